// Tensor-core building blocks of the prefill kernel (sm_80+): ldmatrix loads of 8x8 tiles of
// 16-bit elements from shared memory and the m16n8k16 matrix multiply-accumulate, f32
// accumulators. Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"), lane l:
//   A (16x16, row-major) a0: row l/4, cols 2(l%4)+{0,1}; a1: row +8; a2: col +8; a3: both +8
//   B (16x8, "col")      b0: rows 2(l%4)+{0,1}, col l/4;  b1: rows +8
//   C (16x8)             c0,c1: row l/4, cols 2(l%4)+{0,1}; c2,c3: row l/4 + 8
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/attention_common.cuh"

namespace strata::kernels::cuda::attention {

// Four 8x8 matrices; lanes 8i..8i+7 give the row addresses of matrix i, lane l receives
// elements (l/4, 2(l%4)+{0,1}) of each.
__device__ inline void LdMatrixX4(uint32_t (&r)[4], const void* smem) {
  const auto addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// As LdMatrixX4, transposed: lane l receives elements (2(l%4)+{0,1}, l/4) of each matrix.
__device__ inline void LdMatrixX4Trans(uint32_t (&r)[4], const void* smem) {
  const auto addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// d += a * b for one 16x8 tile.
template <AttentionDType kDType>
__device__ inline void Mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (kDType == AttentionDType::kBf16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Folds one tile of raw scores into a warp's online softmax (both prefill kernels). `s` holds
// the C fragments of the warp's 16 rows by kSTiles * 8 keys from key `k0`; this lane's two rows
// (l/4 and l/4 + 8) sit at positions pos[0..1] and see keys from first[0..1]. Masks (causal,
// window), caps and moves each score to the log2 domain, updates the rows' running max `m`,
// rescales their sums `l` and output accumulators `o` as the max moves, and leaves in `s` each
// key's weight exp2(logit - max) (0 where masked; a row with nothing visible yet uses max 0),
// added to `l`.
template <int kSTiles, int kOTiles>
__device__ inline void FoldSoftmaxTile(float (&s)[kSTiles][4], float (&o)[kOTiles][4],
                                       float (&m)[2], float (&l)[2], int32_t k0, int lane,
                                       const int32_t (&pos)[2], const int32_t (&first)[2],
                                       float scale, float softcap) {
  float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int n = 0; n < kSTiles; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = e / 2;
      const int32_t key = k0 + n * 8 + 2 * (lane % 4) + e % 2;
      float v = Logit2(s[n][e], scale, softcap);
      if (key > pos[r] || key < first[r]) v = -INFINITY;
      s[n][e] = v;
      tile_max[r] = fmaxf(tile_max[r], v);
    }
  }
  float base[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
    tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
    const float m_new = fmaxf(m[r], tile_max[r]);
    base[r] = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing visible yet
    const float alpha = exp2f(m[r] - base[r]);
    m[r] = m_new;
    l[r] *= alpha;
#pragma unroll
    for (int n = 0; n < kOTiles; ++n) {
      o[n][2 * r] *= alpha;
      o[n][2 * r + 1] *= alpha;
    }
  }
#pragma unroll
  for (int n = 0; n < kSTiles; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      s[n][e] = exp2f(s[n][e] - base[e / 2]);
      l[e / 2] += s[n][e];
    }
  }
}

// Normalizes a warp's slab of 16 output rows and stores the rows below `rows` (both prefill
// kernels): `o` holds their C fragments (kOTiles * 8 columns), `l` this lane's two rows' sums
// (quad partials, reduced here); the slab starts at row `slab` of a tile whose row 0 is at
// `tile_out`, rows `row_stride` elements apart.
template <AttentionDType kDType, int kOTiles>
__device__ inline void StoreWarpRows(const float (&o)[kOTiles][4], float (&l)[2], int slab,
                                     int rows, typename Elem<kDType>::T* tile_out,
                                     int64_t row_stride, int lane) {
  using E = Elem<kDType>;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    const int row = slab + lane / 4 + 8 * r;
    if (row >= rows) continue;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    typename E::T* dst = tile_out + row * row_stride;
#pragma unroll
    for (int n = 0; n < kOTiles; ++n) {
      *reinterpret_cast<typename E::T2*>(dst + n * 8 + 2 * (lane % 4)) =
          E::FromFloat2(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    }
  }
}

// Two floats as one register of two 16-bit elements (lo in the low half).
template <AttentionDType kDType>
__device__ inline uint32_t Pack2(float lo, float hi) {
  auto v = Elem<kDType>::FromFloat2(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

}  // namespace strata::kernels::cuda::attention

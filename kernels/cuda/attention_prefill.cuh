// Prefill attention, FlashAttention-2 style, over the paged KV cache.
//
// A block of 4 warps owns one (query tile of 64 rows, sequence, query head); warp w owns rows
// 16w..16w+15. The tile's Q is copied to shared memory once; then for each tile of kBc keys in
// the rows' visible range, K and V are gathered from the cache's blocks with cp.async (V's copy
// overlaps S = Q K^T), S is computed on the tensor cores, masked (causal, window), soft-capped,
// and folded into a running max / sum per row (the online softmax, exp2 domain); P, rounded to
// the input type, multiplies V into f32 accumulators rescaled as the max moves. Shared tiles are
// swizzled (attention_common.cuh) so ldmatrix reads them without bank conflicts. From an fp8
// cache, K and V codes are converted to the input type (exactly) as they are stored to shared
// memory, with plain loads instead of cp.async, and the rows' scales are applied in f32: each
// key's K scale to its column of S, its V scale to its column of P before P . V.
//
// Every block works on its own sequence's rows only, in a fixed key order: the result of a
// sequence does not depend on the rest of the batch. Sequences with one query token are the
// decode kernel's and are skipped here.
#pragma once

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/attention_mma.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace strata::kernels::cuda::attention {

inline constexpr int kPrefillRows = 64;  // query rows per block
__host__ __device__ constexpr int PrefillKeys(int dim) { return dim >= 256 ? 32 : 64; }  // keys per tile
template <int kDim, AttentionDType kDType>
constexpr size_t PrefillSmemBytes() {
  return static_cast<size_t>(kPrefillRows + 2 * PrefillKeys(kDim)) * kDim * 2;
}

// Gathers keys [k0, k0 + kRows) of one KV head (zeros from key_end on) into a swizzled tile.
template <int kDim, int kRows, class T>
__device__ inline void LoadKvTile(T* tile, const T* cache, const int32_t* table, int32_t k0,
                                  int32_t key_end, const PagedAttentionArgs& a,
                                  int64_t kv_head) {
  using Tile = SwizzledTile<kDim>;
  for (int i = threadIdx.x; i < kRows * Tile::kChunks; i += kThreads) {
    const int r = i / Tile::kChunks;
    const int c = i % Tile::kChunks;
    const int32_t key = k0 + r;
    const bool valid = key < key_end;
    const T* src =
        valid ? cache + CacheRow(table, key, a.block_size, a.num_kv_heads, kv_head, kDim) + c * 8
              : cache;
    CopyAsync16(tile + Tile::Offset(r, c), src, valid);
  }
}

// The same from an fp8 cache: each chunk's 8 codes as T (exact: e4m3 fits bf16 and fp16),
// stored synchronously (the conversion happens on the way), and each key's row scale in
// `tile_scales` (0 past the end). The kernel applies the scales to S and P, in f32.
template <int kDim, int kRows, AttentionDType kDType>
__device__ inline void LoadFp8KvTile(typename Elem<kDType>::T* tile, float* tile_scales,
                                     const uint8_t* cache, const float* scales,
                                     const int32_t* table, int32_t k0, int32_t key_end,
                                     const PagedAttentionArgs& a, int64_t kv_head) {
  using E = Elem<kDType>;
  using Tile = SwizzledTile<kDim>;
  for (int i = threadIdx.x; i < kRows * Tile::kChunks; i += kThreads) {
    const int r = i / Tile::kChunks;
    const int c = i % Tile::kChunks;
    const int32_t key = k0 + r;
    uint4 packed = {0, 0, 0, 0};  // zeros past the end, as the cp.async path
    float scale = 0.0f;
    if (key < key_end) {
      const int64_t row = CacheRow(table, key, a.block_size, a.num_kv_heads, kv_head, kDim);
      float f[8];
      UnpackFp8x8(*reinterpret_cast<const uint2*>(cache + row + c * 8), 1.0f, f);
      auto* pairs = reinterpret_cast<typename E::T2*>(&packed);
#pragma unroll
      for (int k = 0; k < 4; ++k) pairs[k] = E::FromFloat2(f[2 * k], f[2 * k + 1]);
      scale = scales[row / kDim];
    }
    *reinterpret_cast<uint4*>(tile + Tile::Offset(r, c)) = packed;
    if (c == 0) tile_scales[r] = scale;
  }
}

template <int kDim, AttentionDType kDType, bool kFp8Kv>
__global__ void __launch_bounds__(kThreads) PrefillKernel(const PagedAttentionArgs a) {
  using T = typename Elem<kDType>::T;
  using C = CacheT<kDType, kFp8Kv>;
  using Tile = SwizzledTile<kDim>;
  constexpr int kBc = PrefillKeys(kDim);
  constexpr int kSTiles = kBc / 8;   // n8 tiles of S per warp
  constexpr int kOTiles = kDim / 8;  // n8 tiles of O per warp

  const int seq = blockIdx.y;
  const PrefillBlock block = PrefillBlockOf<kPrefillRows, kBc>(a, seq, blockIdx.x);
  if (block.rows == 0) return;
  const auto [q_start, tile_q, pos0, rows, key_begin, key_end] = block;
  const int64_t head = blockIdx.z;
  const int64_t kv_head = head / (a.num_heads / a.num_kv_heads);
  const int32_t* table = a.block_tables + seq * a.max_blocks_per_seq;
  const C* k_cache = static_cast<const C*>(a.k_cache);
  const C* v_cache = static_cast<const C*>(a.v_cache);

  extern __shared__ __align__(128) unsigned char smem[];
  T* q_s = reinterpret_cast<T*>(smem);  // [kPrefillRows, kDim]
  T* k_s = q_s + kPrefillRows * kDim;   // [kBc, kDim]
  T* v_s = k_s + kBc * kDim;            // [kBc, kDim]
  __shared__ float kv_scale_s[2][kFp8Kv ? kBc : 1];  // fp8: the tile's K and V row scales

  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const T* q = static_cast<const T*>(a.q);
  for (int i = threadIdx.x; i < kPrefillRows * Tile::kChunks; i += kThreads) {
    const int r = i / Tile::kChunks;
    const int c = i % Tile::kChunks;
    const bool valid = r < rows;
    const T* src = q + (int64_t{q_start + tile_q + (valid ? r : 0)} * a.num_heads + head) * kDim;
    CopyAsync16(q_s + Tile::Offset(r, c), src + c * 8, valid);
  }
  CopyAsyncCommit();

  // This lane's two rows (C fragment rows l/4 and l/4 + 8 of the warp's slab).
  const int32_t pos[2] = {pos0 + warp * 16 + lane / 4, pos0 + warp * 16 + lane / 4 + 8};
  const int32_t first[2] = {FirstVisibleKey(pos[0], a.sliding_window),
                            FirstVisibleKey(pos[1], a.sliding_window)};
  float o[kOTiles][4] = {};
  float m[2] = {-INFINITY, -INFINITY};
  float l[2] = {0.0f, 0.0f};

  for (int32_t k0 = key_begin; k0 < key_end; k0 += kBc) {
    if constexpr (kFp8Kv) {  // converted as they are stored; the commits keep the group count
      LoadFp8KvTile<kDim, kBc, kDType>(k_s, kv_scale_s[0], k_cache, a.k_scale, table, k0, key_end,
                                       a, kv_head);
      CopyAsyncCommit();
      LoadFp8KvTile<kDim, kBc, kDType>(v_s, kv_scale_s[1], v_cache, a.v_scale, table, k0,
                                       key_end, a, kv_head);
      CopyAsyncCommit();
    } else {
      LoadKvTile<kDim, kBc>(k_s, k_cache, table, k0, key_end, a, kv_head);
      CopyAsyncCommit();
      LoadKvTile<kDim, kBc>(v_s, v_cache, table, k0, key_end, a, kv_head);
      CopyAsyncCommit();
    }
    CopyAsyncWait<1>();  // Q and K have landed; V may still be in flight
    __syncthreads();

    float s[kSTiles][4] = {};
#pragma unroll
    for (int kk = 0; kk < kDim / 16; ++kk) {
      uint32_t qa[4];
      LdMatrixX4(qa, q_s + Tile::Offset(warp * 16 + lane % 16, kk * 2 + lane / 16));
#pragma unroll
      for (int np = 0; np < kSTiles / 2; ++np) {
        uint32_t kb[4];
        LdMatrixX4(kb, k_s + Tile::Offset(np * 16 + lane % 8 + (lane / 16) * 8,
                                          kk * 2 + (lane / 8) % 2));
        Mma<kDType>(s[2 * np], qa, kb[0], kb[1]);
        Mma<kDType>(s[2 * np + 1], qa, kb[2], kb[3]);
      }
    }

    if constexpr (kFp8Kv) {  // q . code times the key's K scale: q . k
#pragma unroll
      for (int n = 0; n < kSTiles; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) s[n][e] *= kv_scale_s[0][n * 8 + 2 * (lane % 4) + e % 2];
      }
    }

    FoldSoftmaxTile(s, o, m, l, k0, lane, pos, first, a.scale, a.softcap);
    if constexpr (kFp8Kv) {  // P times the key's V scale, so P . code is P . v
#pragma unroll
      for (int n = 0; n < kSTiles; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) s[n][e] *= kv_scale_s[1][n * 8 + 2 * (lane % 4) + e % 2];
      }
    }

    CopyAsyncWait<0>();  // V has landed
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBc / 16; ++kk) {
      const uint32_t pa[4] = {Pack2<kDType>(s[2 * kk][0], s[2 * kk][1]),
                              Pack2<kDType>(s[2 * kk][2], s[2 * kk][3]),
                              Pack2<kDType>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              Pack2<kDType>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < kOTiles / 2; ++dp) {
        uint32_t vb[4];
        LdMatrixX4Trans(vb, v_s + Tile::Offset(kk * 16 + lane % 8 + ((lane / 8) % 2) * 8,
                                               dp * 2 + lane / 16));
        Mma<kDType>(o[2 * dp], pa, vb[0], vb[1]);
        Mma<kDType>(o[2 * dp + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();  // the next tile's copies overwrite K and V
  }

  T* tile_out = static_cast<T*>(a.out) + (int64_t{q_start + tile_q} * a.num_heads + head) * kDim;
  StoreWarpRows<kDType>(o, l, warp * 16, rows, tile_out, a.num_heads * kDim, lane);
}

// Launches the prefill kernel over the step's sequences with more than one query token.
template <int kDim, AttentionDType kDType, bool kFp8Kv>
absl::Status LaunchPrefill(const PagedAttentionArgs& a, void* stream) {
  if (absl::Status layout = CheckTunedLayout("prefill", kDim, a); !layout.ok()) return layout;
  if (a.max_query_len <= 1 || a.num_seqs == 0) return absl::OkStatus();
  constexpr size_t kSmem = PrefillSmemBytes<kDim, kDType>();
  if constexpr (kSmem > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(
        PrefillKernel<kDim, kDType, kFp8Kv>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
    if (err != cudaSuccess) {
      return absl::InternalError(std::string("prefill attention: shared memory of ") +
                                 std::to_string(kSmem) + " bytes refused: " +
                                 cudaGetErrorString(err));
    }
  }
  const dim3 grid(static_cast<unsigned>((a.max_query_len + kPrefillRows - 1) / kPrefillRows),
                  static_cast<unsigned>(a.num_seqs), static_cast<unsigned>(a.num_heads));
  PrefillKernel<kDim, kDType, kFp8Kv><<<grid, kThreads, kSmem, AsStream(stream)>>>(a);
  return LaunchStatus("PrefillKernel");
}

}  // namespace strata::kernels::cuda::attention

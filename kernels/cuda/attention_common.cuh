// Device helpers of the attention kernels: element types, 16-byte asynchronous copies, the
// swizzled shared-memory tile layout, warp reductions and the paged-cache row address.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "kernels/cuda/attention.h"

namespace strata::kernels::cuda::attention {

// OK when a tuned `kind` instance of head dim `dim` takes `a`: that head dim, V stored and of
// the same dim (other layouts are the generic kernel's).
inline absl::Status CheckTunedLayout(const char* kind, int dim, const PagedAttentionArgs& a) {
  if (a.head_dim == dim && !a.v_in_k && (a.v_head_dim == 0 || a.v_head_dim == dim)) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      std::string(kind) + " attention instance for head_dim " + std::to_string(dim) +
      " (V stored, of the same dim) given head_dim " + std::to_string(a.head_dim) +
      ", v_head_dim " + std::to_string(a.v_head_dim) + (a.v_in_k ? ", V in K" : ""));
}

inline constexpr float kLog2e = 1.4426950408889634f;
inline constexpr int kWarps = 4;
inline constexpr int kThreads = kWarps * 32;

// The element types by registry dtype, and their conversions.
template <AttentionDType kDType>
struct Elem;
template <>
struct Elem<AttentionDType::kBf16> {
  using T = __nv_bfloat16;
  using T2 = __nv_bfloat162;
  static __device__ float ToFloat(T x) { return __bfloat162float(x); }
  static __device__ float2 ToFloat2(T2 x) { return __bfloat1622float2(x); }
  static __device__ T FromFloat(float x) { return __float2bfloat16_rn(x); }
  static __device__ T2 FromFloat2(float lo, float hi) { return __floats2bfloat162_rn(lo, hi); }
};
template <>
struct Elem<AttentionDType::kFp16> {
  using T = __half;
  using T2 = __half2;
  static __device__ float ToFloat(T x) { return __half2float(x); }
  static __device__ float2 ToFloat2(T2 x) { return __half22float2(x); }
  static __device__ T FromFloat(float x) { return __float2half_rn(x); }
  static __device__ T2 FromFloat2(float lo, float hi) { return __floats2half2_rn(lo, hi); }
};

// Converts 8 packed 16-bit elements (one 16-byte load) to floats.
template <AttentionDType kDType>
__device__ inline void Unpack8(const uint4& raw, float* out) {
  using E = Elem<kDType>;
  const auto* pairs = reinterpret_cast<const typename E::T2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = E::ToFloat2(pairs[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

// The cache's element: the activations' type, or fp8 e4m3 codes (bytes) whose value is the
// code's times the scale of its (slot, KV head) row.
template <AttentionDType kDType, bool kFp8Kv>
using CacheT = std::conditional_t<kFp8Kv, uint8_t, typename Elem<kDType>::T>;

// One e4m3 code as a float (exact: e4m3 -> half is).
__device__ inline float Fp8ToFloat(uint8_t code) {
  return __half2float(__half(__nv_cvt_fp8_to_halfraw(code, __NV_E4M3)));
}
// Two e4m3 codes (low byte first) as floats times `scale`.
__device__ inline float2 Fp8x2ToFloat2(uint16_t codes, float scale) {
  const float2 f = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(codes, __NV_E4M3)));
  return {f.x * scale, f.y * scale};
}
// Converts 8 e4m3 codes (one 8-byte load) to floats times `scale`.
__device__ inline void UnpackFp8x8(const uint2& raw, float scale, float* out) {
  const auto* pairs = reinterpret_cast<const uint16_t*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = Fp8x2ToFloat2(pairs[i], scale);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

// The cache row of key position `key` of a sequence whose block table is `table`: the element
// offset of its KV head `kv_head` in [num_blocks, block_size, num_kv_heads, head_dim].
__device__ inline int64_t CacheRow(const int32_t* table, int32_t key, int64_t block_size,
                                   int64_t num_kv_heads, int64_t kv_head, int64_t head_dim) {
  const int64_t block = table[key / block_size];
  const int64_t slot = block * block_size + key % block_size;
  return (slot * num_kv_heads + kv_head) * head_dim;
}

// 16-byte global -> shared copy that completes asynchronously (cp.async); src_bytes 0 fills the
// destination with zeros (rows past the end, so no garbage, NaN included, enters a product).
__device__ inline void CopyAsync16(void* smem, const void* gmem, bool valid) {
  const auto dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem),
               "r"(src_bytes));
}
__device__ inline void CopyAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ inline void CopyAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// A [rows, kDim] tile of 16-bit elements in shared memory, stored by 16-byte chunks with chunk
// c of row r at chunk position c ^ (r % 8): the 8 rows an ldmatrix reads at one column then sit
// in 8 different bank groups (unswizzled, rows 2*kDim bytes apart would all hit one).
template <int kDim>
struct SwizzledTile {
  static_assert(kDim % 64 == 0, "the swizzle needs at least 8 chunks per row");
  static constexpr int kChunks = kDim / 8;
  __device__ static int Offset(int row, int chunk) {  // in elements
    return row * kDim + ((chunk ^ (row & 7)) * 8);
  }
};

__device__ inline float WarpMax(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  }
  return v;
}
__device__ inline float WarpSum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// The keys a query at `pos` sees: [first, pos].
__device__ inline int32_t FirstVisibleKey(int32_t pos, int64_t sliding_window) {
  if (sliding_window <= 0) return 0;
  const int64_t first = pos - sliding_window + 1;
  return first > 0 ? static_cast<int32_t>(first) : 0;
}

// What a prefill block owns: query rows [tile_q, tile_q + rows) of its sequence (tile `tile`
// of kRows), the first at position pos0, and the keys they see: from key_begin, a multiple of
// kKeys (so a row's key tiles, and its rounding, are the same however its prompt was chunked),
// to key_end, one past the last row's position. `rows` is 0 where the block has nothing to do:
// a decode sequence (the decode kernel's) or a tile past the prompt.
struct PrefillBlock {
  int32_t q_start = 0;  // the sequence's first query row in the step
  int32_t tile_q = 0;
  int32_t pos0 = 0;
  int32_t rows = 0;
  int32_t key_begin = 0;
  int32_t key_end = 0;
};
template <int kRows, int kKeys>
__device__ inline PrefillBlock PrefillBlockOf(const PagedAttentionArgs& a, int seq, int tile) {
  PrefillBlock b;
  b.q_start = a.query_start[seq];
  const int32_t n_q = a.query_start[seq + 1] - b.q_start;
  b.tile_q = tile * kRows;
  if (n_q <= 1 || b.tile_q >= n_q) return b;
  b.pos0 = a.context_lens[seq] - n_q + b.tile_q;
  b.rows = min(kRows, n_q - b.tile_q);
  b.key_begin = FirstVisibleKey(b.pos0, a.sliding_window) / kKeys * kKeys;
  b.key_end = b.pos0 + b.rows;
  return b;
}

// A raw score (q.k) -> the log2-domain logit the softmax exponentiates.
__device__ inline float Logit2(float dot, float scale, float softcap) {
  float s = dot * scale;
  if (softcap > 0.0f) s = softcap * tanhf(s / softcap);
  return s * kLog2e;
}

}  // namespace strata::kernels::cuda::attention

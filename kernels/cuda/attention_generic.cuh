// Generic paged attention: any head dim up to the instance's kMaxDim (256, or 576 for
// DeepSeek's latent rows of 512 + 64), any query length, on CUDA cores. The registry uses it
// where no tuned instance exists for a head dim (small test models, Phi-2's 80, Phi-3's 96)
// and for multi-head latent attention (V the first v_head_dim values of each K row); it is
// simple rather than fast.
//
// One warp per (query token, head), two passes over the visible keys in fixed order:
//   1. lane j scores keys j, j + 32, ... (a full dot product each) and keeps a running max and
//      sum; the warp merges the lanes' (max, sum) pairs by butterfly;
//   2. for each chunk of 32 keys, every lane recomputes its key's probability, then the warp
//      walks the chunk, each lane accumulating the output dims it owns (lane + 32 t).
// A query's result depends on its own sequence only.
#pragma once

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace strata::kernels::cuda::attention {

inline constexpr int kGenericWarps = 4;  // (token, head) pairs per block

template <int kMaxDim, AttentionDType kDType, bool kFp8Kv>
__global__ void __launch_bounds__(kGenericWarps * 32) GenericKernel(const PagedAttentionArgs a) {
  using E = Elem<kDType>;
  using T = typename E::T;
  using C = CacheT<kDType, kFp8Kv>;
  constexpr int kSlots = kMaxDim / 32;  // output dims per lane
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t item = int64_t{blockIdx.x} * kGenericWarps + warp;  // token * heads + head
  // Tokens from the first sequence's first (a launch may cover a later range of the step's
  // sequences, whose rows do not start at 0).
  const int64_t token = a.query_start[0] + item / a.num_heads, head = item % a.num_heads;
  // The token's sequence: the last s with query_start[s] <= token.
  int lo = 0, hi = static_cast<int>(a.num_seqs);
  if (token >= a.query_start[a.num_seqs]) return;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (a.query_start[mid] <= token) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  const int seq = lo;
  const int32_t n_q = a.query_start[seq + 1] - a.query_start[seq];
  const int32_t pos = a.context_lens[seq] - n_q + static_cast<int32_t>(token - a.query_start[seq]);
  const int32_t first = FirstVisibleKey(pos, a.sliding_window);
  const int64_t d = a.head_dim;
  const int64_t dv = a.v_head_dim > 0 ? a.v_head_dim : d;
  const int64_t kv_head = head / (a.num_heads / a.num_kv_heads);
  const int32_t* table = a.block_tables + seq * a.max_blocks_per_seq;
  const T* q = static_cast<const T*>(a.q) + (token * a.num_heads + head) * d;
  const C* k_cache = static_cast<const C*>(a.k_cache);
  // V: its own rows of dv values, or the first dv values of the K rows.
  const C* v_cache = static_cast<const C*>(a.v_in_k ? a.k_cache : a.v_cache);
  const float* v_scales = a.v_in_k ? a.k_scale : a.v_scale;
  const int64_t v_row_dim = a.v_in_k ? d : dv;
  // Element i of the cache row at `row` of `row_dim` values (its code times the row's scale for
  // an fp8 cache).
  auto element = [&](const C* cache, const float* scales, int64_t row_dim, int64_t row, int64_t i) {
    if constexpr (kFp8Kv) {
      return Fp8ToFloat(cache[row + i]) * scales[row / row_dim];
    } else {
      return E::ToFloat(cache[row + i]);
    }
  };

  __shared__ float q_s[kGenericWarps][kMaxDim];
  for (int64_t i = lane; i < d; i += 32) q_s[warp][i] = E::ToFloat(q[i]);
  __syncwarp();
  auto logit = [&](int32_t key) {
    const int64_t k = CacheRow(table, key, a.block_size, a.num_kv_heads, kv_head, d);
    float dot = 0.0f;
    for (int64_t i = 0; i < d; ++i) dot += q_s[warp][i] * element(k_cache, a.k_scale, d, k, i);
    return Logit2(dot, a.scale, a.softcap);
  };

  // Pass 1: the max and the sum of exp2(logit - max) over the visible keys.
  float m = -INFINITY, l = 0.0f;
  for (int32_t key = first + lane; key <= pos; key += 32) {
    const float s = logit(key);
    const float m_new = fmaxf(m, s);
    l = l * exp2f(m - m_new) + exp2f(s - m_new);
    m = m_new;
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float m_other = __shfl_xor_sync(0xffffffffu, m, offset);
    const float l_other = __shfl_xor_sync(0xffffffffu, l, offset);
    const float m_new = fmaxf(m, m_other);
    if (m_new == -INFINITY) continue;  // both lanes saw nothing
    l = l * exp2f(m - m_new) + l_other * exp2f(m_other - m_new);
    m = m_new;
  }
  const float inv = 1.0f / l;  // every query sees at least its own key

  // Pass 2: out = sum_k p_k v_k, lane owning dims lane + 32 t.
  float acc[kSlots] = {};
  for (int32_t chunk = first; chunk <= pos; chunk += 32) {
    const int32_t key = chunk + lane;
    const float p = key <= pos ? exp2f(logit(key) - m) * inv : 0.0f;
    const int n = min(32, pos + 1 - chunk);
    for (int j = 0; j < n; ++j) {
      const float pj = __shfl_sync(0xffffffffu, p, j);
      const int64_t v =
          CacheRow(table, chunk + j, a.block_size, a.num_kv_heads, kv_head, v_row_dim);
#pragma unroll
      for (int t = 0; t < kSlots; ++t) {
        const int64_t i = lane + 32 * t;
        if (i < dv) acc[t] += pj * element(v_cache, v_scales, v_row_dim, v, i);
      }
    }
  }
  T* out = static_cast<T*>(a.out) + (token * a.num_heads + head) * dv;
#pragma unroll
  for (int t = 0; t < kSlots; ++t) {
    const int64_t i = lane + 32 * t;
    if (i < dv) out[i] = E::FromFloat(acc[t]);
  }
}

// Launches the generic kernel for head dims up to kDim over every query token of the step
// (both kinds).
template <int kDim, AttentionDType kDType, bool kFp8Kv>
absl::Status LaunchGeneric(const PagedAttentionArgs& a, void* stream) {
  static_assert(kDim % 32 == 0, "the generic kernel's lanes own kDim / 32 output dims each");
  if (a.head_dim <= 0 || a.head_dim > kDim || a.v_head_dim < 0 || a.v_head_dim > a.head_dim) {
    return absl::InvalidArgumentError(
        "generic attention: head_dim " + std::to_string(a.head_dim) + " not in [1, " +
        std::to_string(kDim) + "] or v_head_dim " + std::to_string(a.v_head_dim) +
        " not in [0, head_dim]");
  }
  if (a.num_seqs == 0) return absl::OkStatus();
  // Query tokens are bounded by the host's bounds: num_seqs * max_query_len, or max_tokens (a
  // long prompt chunk among many decodes would otherwise launch a block per head for every
  // decode sequence times the chunk's length).
  int64_t tokens = a.num_seqs * a.max_query_len;
  if (a.max_tokens > 0 && a.max_tokens < tokens) tokens = a.max_tokens;
  const int64_t items = tokens * a.num_heads;
  if (items == 0) return absl::OkStatus();
  const int64_t blocks = (items + kGenericWarps - 1) / kGenericWarps;
  if (blocks > 0x7fffffff) return absl::InvalidArgumentError("generic attention: step too large");
  GenericKernel<kDim, kDType, kFp8Kv>
      <<<static_cast<unsigned>(blocks), kGenericWarps * 32, 0, AsStream(stream)>>>(a);
  return LaunchStatus("GenericKernel");
}

}  // namespace strata::kernels::cuda::attention

// Decode attention (one query token per sequence) over the paged KV cache, split-K.
//
// Grid: x = (KV head, tile of kGroup query heads of it), y = sequence, z = key split
// (DecodeSplit of the sequence's visible span). A block of 4 warps walks its split's keys in
// tiles of 32, warp w taking tiles w, w + 4, ...:
//   * scores: lane j owns key j of the tile, reads its K row once (16-byte loads, 8-byte for an
//     fp8 cache, whose codes are scaled by the row's scale as they are read) and dots it
//     with every query head of the group (q in shared memory, broadcast reads), so a K row is
//     read once for the whole GQA group;
//   * online softmax per head over the warp's tiles (warp max / sum, exp2 domain);
//   * values: each lane owns head_dim / 32 output dims and accumulates the tile's V rows
//     (coalesced across the warp) weighted by the tile's probabilities.
// The 4 warps are merged in warp order; with one split the block writes the output, otherwise
// it writes an unnormalised partial (f32) with its max and sum, and DecodeReduceKernel merges
// the splits in split order. All orders depend only on the sequence itself.
#pragma once

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace strata::kernels::cuda::attention {

// The split partials in the workspace: o [num_seqs, num_heads, max_splits, head_dim], then
// max and sum [num_seqs, num_heads, max_splits] each, f32.
struct DecodeWorkspace {
  float* o;
  float* m;
  float* l;
  __host__ __device__ DecodeWorkspace(void* base, int64_t num_seqs, int64_t num_heads,
                                      int32_t max_splits, int64_t head_dim) {
    const int64_t partials = num_seqs * num_heads * max_splits;
    o = static_cast<float*>(base);
    m = o + partials * head_dim;
    l = m + partials;
  }
};

// The visible keys of sequence `seq`'s decode query: [first, ctx), or nothing (ctx <= 0).
struct DecodeSpan {
  int32_t first;
  int32_t ctx;
  DecodeSplitInfo split;
};
__device__ inline DecodeSpan DecodeSpanOf(const PagedAttentionArgs& a, int seq) {
  const int32_t ctx = a.context_lens[seq];
  const int32_t first = FirstVisibleKey(ctx - 1, a.sliding_window);
  return {first, ctx, DecodeSplit(ctx - first)};
}

// Loads kVec consecutive 16-bit elements (kVec = 2, 4 or 8) as floats.
template <int kVec, AttentionDType kDType>
__device__ inline void LoadVec(const typename Elem<kDType>::T* src, float* out) {
  if constexpr (kVec == 8) {
    Unpack8<kDType>(*reinterpret_cast<const uint4*>(src), out);
  } else {
    using T2 = typename Elem<kDType>::T2;
    const T2* pairs = reinterpret_cast<const T2*>(src);
    T2 raw[kVec / 2];
    if constexpr (kVec == 4) {
      *reinterpret_cast<uint2*>(raw) = *reinterpret_cast<const uint2*>(pairs);
    } else {
      raw[0] = pairs[0];
    }
#pragma unroll
    for (int i = 0; i < kVec / 2; ++i) {
      const float2 f = Elem<kDType>::ToFloat2(raw[i]);
      out[2 * i] = f.x;
      out[2 * i + 1] = f.y;
    }
  }
}

// 8 consecutive K elements at chunk c of a cache row (16-bit elements, or fp8 codes times the
// row's scale), as floats.
template <AttentionDType kDType, bool kFp8Kv>
__device__ inline void LoadKey8(const CacheT<kDType, kFp8Kv>* row, int c, float scale, float* out) {
  if constexpr (kFp8Kv) {
    UnpackFp8x8(__ldg(reinterpret_cast<const uint2*>(row) + c), scale, out);
  } else {
    Unpack8<kDType>(__ldg(reinterpret_cast<const uint4*>(row) + c), out);
  }
}

// kVec consecutive V elements (kVec = 2, 4 or 8) as floats.
template <int kVec, AttentionDType kDType, bool kFp8Kv>
__device__ inline void LoadValues(const CacheT<kDType, kFp8Kv>* src, float scale, float* out) {
  if constexpr (kFp8Kv) {
    uint16_t pairs[kVec / 2];
    if constexpr (kVec == 8) {
      *reinterpret_cast<uint2*>(pairs) = *reinterpret_cast<const uint2*>(src);
    } else if constexpr (kVec == 4) {
      *reinterpret_cast<uint32_t*>(pairs) = *reinterpret_cast<const uint32_t*>(src);
    } else {
      pairs[0] = *reinterpret_cast<const uint16_t*>(src);
    }
#pragma unroll
    for (int i = 0; i < kVec / 2; ++i) {
      const float2 f = Fp8x2ToFloat2(pairs[i], scale);
      out[2 * i] = f.x;
      out[2 * i + 1] = f.y;
    }
  } else {
    LoadVec<kVec, kDType>(src, out);
  }
}

template <int kDim, int kGroup, AttentionDType kDType, bool kFp8Kv>
__global__ void __launch_bounds__(kThreads) DecodeKernel(const PagedAttentionArgs a,
                                                         int32_t max_splits) {
  using E = Elem<kDType>;
  using T = typename E::T;
  using C = CacheT<kDType, kFp8Kv>;
  constexpr int kVec = kDim / 32;  // output dims per lane

  const int seq = blockIdx.y;
  const int32_t q_row = a.query_start[seq];
  if (a.query_start[seq + 1] - q_row != 1) return;  // the prefill kernel's
  const DecodeSpan span = DecodeSpanOf(a, seq);
  const int32_t split = blockIdx.z;
  if (split >= span.split.splits) return;
  const int32_t k_begin = span.first + split * span.split.chunk;
  const int32_t k_end = min(span.ctx, k_begin + span.split.chunk);

  const int64_t group = a.num_heads / a.num_kv_heads;
  const int64_t head_tiles = (group + kGroup - 1) / kGroup;
  const int64_t kv_head = blockIdx.x / head_tiles;
  const int64_t tile_first = (blockIdx.x % head_tiles) * kGroup;
  const int heads = static_cast<int>(min(int64_t{kGroup}, group - tile_first));
  const int64_t head0 = kv_head * group + tile_first;  // the block's first query head

  __shared__ __align__(16) float q_s[kGroup][kDim];
  __shared__ float p_s[kWarps][kGroup][32];
  __shared__ int64_t row_s[kWarps][32];
  __shared__ float v_scale_s[kWarps][32];  // fp8 caches: each tile key's V scale
  __shared__ float m_s[kWarps][kGroup];
  __shared__ float l_s[kWarps][kGroup];
  __shared__ float o_s[kWarps][kGroup][kDim];

  const T* q = static_cast<const T*>(a.q) + (int64_t{q_row} * a.num_heads + head0) * kDim;
  for (int i = threadIdx.x; i < kGroup * kDim; i += kThreads) {
    q_s[i / kDim][i % kDim] = i / kDim < heads ? E::ToFloat(q[i]) : 0.0f;
  }
  __syncthreads();

  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int32_t* table = a.block_tables + seq * a.max_blocks_per_seq;
  const C* k_cache = static_cast<const C*>(a.k_cache);
  const C* v_cache = static_cast<const C*>(a.v_cache);
  float m[kGroup], l[kGroup], acc[kGroup][kVec];
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int v = 0; v < kVec; ++v) acc[g][v] = 0.0f;
  }

  const int num_tiles = (k_end - k_begin + 31) / 32;
  for (int tile = warp; tile < num_tiles; tile += kWarps) {
    const int32_t key0 = k_begin + tile * 32;
    const bool valid = key0 + lane < k_end;  // lane 0 always is
    float s[kGroup];
    int64_t row = 0;
    float v_scale = 1.0f;
    if (valid) {
      row = CacheRow(table, key0 + lane, a.block_size, a.num_kv_heads, kv_head, kDim);
      float k_scale = 1.0f;
      if constexpr (kFp8Kv) {
        k_scale = a.k_scale[row / kDim];
        v_scale = a.v_scale[row / kDim];
      }
      float dot[kGroup] = {};
#pragma unroll 4
      for (int c = 0; c < kDim / 8; ++c) {
        float k[8];
        LoadKey8<kDType, kFp8Kv>(k_cache + row, c, k_scale, k);
#pragma unroll
        for (int g = 0; g < kGroup; ++g) {
          const float4 qa = *reinterpret_cast<const float4*>(&q_s[g][c * 8]);
          const float4 qb = *reinterpret_cast<const float4*>(&q_s[g][c * 8 + 4]);
          dot[g] += qa.x * k[0] + qa.y * k[1] + qa.z * k[2] + qa.w * k[3] + qb.x * k[4] +
                    qb.y * k[5] + qb.z * k[6] + qb.w * k[7];
        }
      }
#pragma unroll
      for (int g = 0; g < kGroup; ++g) s[g] = Logit2(dot[g], a.scale, a.softcap);
    } else {
#pragma unroll
      for (int g = 0; g < kGroup; ++g) s[g] = -INFINITY;
    }
    row_s[warp][lane] = row;
    v_scale_s[warp][lane] = v_scale;
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      const float m_new = fmaxf(m[g], WarpMax(s[g]));  // finite: lane 0's key is visible
      const float alpha = exp2f(m[g] - m_new);
      const float p = valid ? exp2f(s[g] - m_new) : 0.0f;
      l[g] = l[g] * alpha + WarpSum(p);
      m[g] = m_new;
      p_s[warp][g][lane] = p;
#pragma unroll
      for (int v = 0; v < kVec; ++v) acc[g][v] *= alpha;
    }
    __syncwarp();
    const int n = min(32, k_end - key0);
#pragma unroll 4
    for (int j = 0; j < n; ++j) {
      float vals[kVec];
      LoadValues<kVec, kDType, kFp8Kv>(v_cache + row_s[warp][j] + lane * kVec, v_scale_s[warp][j],
                                       vals);
#pragma unroll
      for (int g = 0; g < kGroup; ++g) {
        const float p = p_s[warp][g][j];
#pragma unroll
        for (int v = 0; v < kVec; ++v) acc[g][v] += p * vals[v];
      }
    }
    __syncwarp();  // p_s and row_s are rewritten by the next tile
  }

  // Merge the warps (warp order), then write the output or this split's partial.
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    if (lane == 0) {
      m_s[warp][g] = m[g];
      l_s[warp][g] = l[g];
    }
#pragma unroll
    for (int v = 0; v < kVec; ++v) o_s[warp][g][lane * kVec + v] = acc[g][v];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < heads * kDim; i += kThreads) {
    const int g = i / kDim;
    const int d = i % kDim;
    float top = m_s[0][g];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) top = fmaxf(top, m_s[w][g]);
    float sum = 0.0f, o = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float e = exp2f(m_s[w][g] - top);  // 0 for a warp that had no tile
      sum += e * l_s[w][g];
      o += e * o_s[w][g][d];
    }
    const int64_t head = head0 + g;
    if (span.split.splits == 1) {
      static_cast<T*>(a.out)[(int64_t{q_row} * a.num_heads + head) * kDim + d] =
          E::FromFloat(o / sum);
    } else {
      const DecodeWorkspace ws(a.workspace, a.num_seqs, a.num_heads, max_splits, kDim);
      const int64_t partial = (seq * a.num_heads + head) * max_splits + split;
      ws.o[partial * kDim + d] = o;
      if (d == 0) {
        ws.m[partial] = top;
        ws.l[partial] = sum;
      }
    }
  }
}

// Merges the splits of each (sequence, head) whose decode query was split; thread d owns
// output dim d.
template <int kDim, AttentionDType kDType>
__global__ void __launch_bounds__(kDim) DecodeReduceKernel(const PagedAttentionArgs a,
                                                           int32_t max_splits) {
  using E = Elem<kDType>;
  const int seq = blockIdx.y;
  const int64_t head = blockIdx.x;
  const int32_t q_row = a.query_start[seq];
  if (a.query_start[seq + 1] - q_row != 1) return;
  // Clamped: a context beyond the host's max_context_len (a broken contract) must not read
  // another sequence's partials.
  const int32_t splits = min(DecodeSpanOf(a, seq).split.splits, max_splits);
  if (splits <= 1) return;
  const DecodeWorkspace ws(a.workspace, a.num_seqs, a.num_heads, max_splits, kDim);
  const int64_t base = (seq * a.num_heads + head) * max_splits;
  float top = ws.m[base];
  for (int s = 1; s < splits; ++s) top = fmaxf(top, ws.m[base + s]);
  float sum = 0.0f, o = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float e = exp2f(ws.m[base + s] - top);
    sum += e * ws.l[base + s];
    o += e * ws.o[(base + s) * kDim + threadIdx.x];
  }
  static_cast<typename E::T*>(a.out)[(int64_t{q_row} * a.num_heads + head) * kDim + threadIdx.x] =
      E::FromFloat(o / sum);
}

template <int kDim, int kGroup, AttentionDType kDType, bool kFp8Kv>
absl::Status LaunchDecodeGroup(const PagedAttentionArgs& a, int32_t max_splits, void* stream) {
  const int64_t group = a.num_heads / a.num_kv_heads;
  const int64_t head_tiles = (group + kGroup - 1) / kGroup;
  const dim3 grid(static_cast<unsigned>(a.num_kv_heads * head_tiles),
                  static_cast<unsigned>(a.num_seqs), static_cast<unsigned>(max_splits));
  DecodeKernel<kDim, kGroup, kDType, kFp8Kv><<<grid, kThreads, 0, AsStream(stream)>>>(a, max_splits);
  return LaunchStatus("DecodeKernel");
}

// Launches the decode kernel (and, when a context may be split, the reduction) over the step's
// sequences with one query token.
template <int kDim, AttentionDType kDType, bool kFp8Kv>
absl::Status LaunchDecode(const PagedAttentionArgs& a, void* stream) {
  if (absl::Status layout = CheckTunedLayout("decode", kDim, a); !layout.ok()) return layout;
  if (a.num_seqs == 0) return absl::OkStatus();
  const int32_t max_splits = DecodeMaxSplits(a.max_context_len);
  // Query heads per block: the group rounded up to a power of two, at most 8.
  const int64_t group = a.num_heads / a.num_kv_heads;
  const absl::Status status =
      group >= 5   ? LaunchDecodeGroup<kDim, 8, kDType, kFp8Kv>(a, max_splits, stream)
      : group >= 3 ? LaunchDecodeGroup<kDim, 4, kDType, kFp8Kv>(a, max_splits, stream)
      : group == 2 ? LaunchDecodeGroup<kDim, 2, kDType, kFp8Kv>(a, max_splits, stream)
                   : LaunchDecodeGroup<kDim, 1, kDType, kFp8Kv>(a, max_splits, stream);
  if (!status.ok() || max_splits == 1) return status;
  const dim3 grid(static_cast<unsigned>(a.num_heads), static_cast<unsigned>(a.num_seqs));
  DecodeReduceKernel<kDim, kDType><<<grid, kDim, 0, AsStream(stream)>>>(a, max_splits);
  return LaunchStatus("DecodeReduceKernel");
}

}  // namespace strata::kernels::cuda::attention

// PagedAttention: one work item per (query token, range of KV heads). The item walks the
// token's context once, block by block, scoring every query head of its KV heads against each
// key row (so GQA reads each K/V row once per group, and the range's rows, adjacent in the
// cache, stream contiguously), then takes a two-pass fp32 softmax and accumulates the value
// rows. Whole-token items when there are enough tokens to keep the pool busy; otherwise the
// KV heads are split so single-sequence decode still uses every thread.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/ops.h"

namespace strata::kernels::cpu {
namespace {

struct AttentionJob {
  const float* q;
  const PagedKv* cache;
  const int32_t* block_tables;
  int64_t max_blocks_per_seq;
  const AttentionParams* params;
  float* out;
};

// Calls fn(t, offset) for context positions t in [first, last], offset = element offset of
// position t's row (all KV heads) in a cache whose tokens are `row` floats apart; one
// block-table lookup per block.
template <class Fn>
void ForEachPosition(const PagedKv& cache, int64_t row, const int32_t* table, int64_t first,
                     int64_t last, Fn&& fn) {
  for (int64_t t = first; t <= last;) {
    const int64_t block = t / cache.block_size;
    const int64_t end = std::min(last + 1, (block + 1) * cache.block_size);
    int64_t offset = (int64_t{table[block]} * cache.block_size + t % cache.block_size) * row;
    for (; t < end; ++t, offset += row) fn(t, offset);
  }
}

// Query token `token` of sequence `seq` at position `pos`, KV heads [kv_begin, kv_end).
void AttendOne(const AttentionJob& job, const IsaKernels& kernels, int64_t seq, int64_t token,
               int64_t pos, int64_t kv_begin, int64_t kv_end, std::vector<float>& scores) {
  const AttentionParams& p = *job.params;
  const PagedKv& cache = *job.cache;
  const int64_t d = p.head_dim;
  const int64_t group = p.num_heads / p.num_kv_heads;
  const int64_t first =
      p.sliding_window > 0 ? std::max<int64_t>(0, pos - p.sliding_window + 1) : 0;
  const int64_t len = pos + 1 - first;
  const int64_t heads = (kv_end - kv_begin) * group;  // query heads of this item
  const int32_t* table = job.block_tables + seq * job.max_blocks_per_seq;
  const int64_t dv = cache.VDim();
  const float* q0 = job.q + (token * p.num_heads + kv_begin * group) * d;
  float* o0 = job.out + (token * p.num_heads + kv_begin * group) * dv;
  scores.resize(heads * len);  // [heads, len]
  ForEachPosition(cache, cache.KRow(), table, first, pos, [&](int64_t t, int64_t offset) {
    for (int64_t h = 0; h < heads; ++h) {
      const float* k_row = cache.k + offset + (kv_begin + h / group) * d;
      float score = kernels.dot(q0 + h * d, k_row, d) * p.scale;
      if (p.softcap > 0.0f) score = p.softcap * std::tanh(score / p.softcap);
      scores[h * len + t - first] = score;
    }
  });
  for (int64_t h = 0; h < heads; ++h) {
    float* sc = scores.data() + h * len;
    const float max_score = *std::max_element(sc, sc + len);
    float denom = 0.0f;
    for (int64_t i = 0; i < len; ++i) {
      sc[i] = std::exp(sc[i] - max_score);
      denom += sc[i];
    }
    kernels.scale(1.0f / denom, sc, len);
  }
  std::fill_n(o0, heads * dv, 0.0f);
  const int64_t v_head = cache.VHeadStride();
  ForEachPosition(cache, cache.VRow(), table, first, pos, [&](int64_t t, int64_t offset) {
    for (int64_t h = 0; h < heads; ++h) {
      const float* v_row = cache.v + offset + (kv_begin + h / group) * v_head;
      kernels.axpy(scores[h * len + t - first], v_row, o0 + h * dv, dv);
    }
  });
}

}  // namespace

void PagedAttention(const float* q, const PagedKv& cache, const int32_t* block_tables,
                    int64_t max_blocks_per_seq, const int32_t* query_start,
                    const int32_t* context_lens, int64_t num_seqs, const AttentionParams& params,
                    float* out, ThreadPool& pool) {
  const int64_t num_tokens = query_start[num_seqs];
  if (num_tokens <= 0) return;
  std::vector<int32_t> token_seq(num_tokens);
  for (int64_t s = 0; s < num_seqs; ++s) {
    std::fill(token_seq.begin() + query_start[s], token_seq.begin() + query_start[s + 1],
              static_cast<int32_t>(s));
  }
  const AttentionJob job{q, &cache, block_tables, max_blocks_per_seq, &params, out};
  const IsaKernels& kernels = ActiveKernels();
  // KV-head ranges per token: enough items for every thread to take a few.
  const int64_t kv_heads = params.num_kv_heads;
  const int64_t splits =
      std::clamp<int64_t>(4 * pool.num_threads() / num_tokens, 1, kv_heads);
  const int64_t kv_per_item = (kv_heads + splits - 1) / splits;
  const int64_t items_per_token = (kv_heads + kv_per_item - 1) / kv_per_item;
  pool.ParallelFor(num_tokens * items_per_token, 1, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t token = item / items_per_token;
      const int64_t kv_begin = item % items_per_token * kv_per_item;
      const int64_t seq = token_seq[token];
      const int64_t n_q = query_start[seq + 1] - query_start[seq];
      const int64_t pos = context_lens[seq] - n_q + (token - query_start[seq]);
      AttendOne(job, kernels, seq, token, pos, kv_begin, std::min(kv_heads, kv_begin + kv_per_item),
                scores);
    }
  });
}

}  // namespace strata::kernels::cpu

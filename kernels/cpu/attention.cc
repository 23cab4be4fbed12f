// PagedAttention: one work item per (query token, KV head). The item scores its query heads
// that share that KV head against each context key in one pass (so GQA reads each K/V row once
// per group), then takes a two-pass fp32 softmax and accumulates the value rows.
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

// Query token `token` of sequence `seq` at position `pos`, KV head `kvh`.
void AttendOne(const AttentionJob& job, const IsaKernels& kernels, int64_t seq, int64_t token,
               int64_t pos, int64_t kvh, std::vector<float>& scores) {
  const AttentionParams& p = *job.params;
  const PagedKv& cache = *job.cache;
  const int64_t d = p.head_dim;
  const int64_t group = p.num_heads / p.num_kv_heads;
  const int64_t first =
      p.sliding_window > 0 ? std::max<int64_t>(0, pos - p.sliding_window + 1) : 0;
  const int64_t len = pos + 1 - first;
  const int32_t* table = job.block_tables + seq * job.max_blocks_per_seq;
  auto kv_offset = [&](int64_t t) {
    const int64_t slot = int64_t{table[t / cache.block_size]} * cache.block_size +
                         t % cache.block_size;
    return (slot * p.num_kv_heads + kvh) * d;
  };
  const float* q0 = job.q + (token * p.num_heads + kvh * group) * d;
  scores.resize(group * len);  // [group, len]
  for (int64_t t = first; t <= pos; ++t) {
    const float* k_row = cache.k + kv_offset(t);
    for (int64_t g = 0; g < group; ++g) {
      float score = kernels.dot(q0 + g * d, k_row, d) * p.scale;
      if (p.softcap > 0.0f) score = p.softcap * std::tanh(score / p.softcap);
      scores[g * len + t - first] = score;
    }
  }
  for (int64_t g = 0; g < group; ++g) {
    float* sc = scores.data() + g * len;
    const float max_score = *std::max_element(sc, sc + len);
    float denom = 0.0f;
    for (int64_t i = 0; i < len; ++i) {
      sc[i] = std::exp(sc[i] - max_score);
      denom += sc[i];
    }
    const float inv = 1.0f / denom;
    for (int64_t i = 0; i < len; ++i) sc[i] *= inv;
    std::fill_n(job.out + (token * p.num_heads + kvh * group + g) * d, d, 0.0f);
  }
  float* o0 = job.out + (token * p.num_heads + kvh * group) * d;
  for (int64_t t = first; t <= pos; ++t) {
    const float* v_row = cache.v + kv_offset(t);
    for (int64_t g = 0; g < group; ++g) kernels.axpy(scores[g * len + t - first], v_row, o0 + g * d, d);
  }
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
  const int64_t kv_heads = params.num_kv_heads;
  pool.ParallelFor(num_tokens * kv_heads, 1, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t token = item / kv_heads;
      const int64_t seq = token_seq[token];
      const int64_t n_q = query_start[seq + 1] - query_start[seq];
      const int64_t pos = context_lens[seq] - n_q + (token - query_start[seq]);
      AttendOne(job, kernels, seq, token, pos, item % kv_heads, scores);
    }
  });
}

}  // namespace strata::kernels::cpu

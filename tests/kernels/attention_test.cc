// PagedAttention on every ISA path against reference::PagedAttention: mixed batches (decode
// rows and a prefill chunk in one call), GQA ratios 1/2/4, block size 16 with scattered block
// tables, softcap, sliding window. Tolerance 2e-5 absolute (+1e-5 relative): outputs are
// convex combinations of values in [-1, 1].
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/thread_pool.h"
#include "gtest/gtest.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/reference_ops.h"
#include "tests/kernels/isa_test_util.h"

namespace strata::kernels::cpu {
namespace {

struct AttnCase {
  int64_t num_heads, num_kv_heads, head_dim;
  float softcap;
  int64_t sliding_window;
};

class AttentionTest : public IsaTest {};

// Checks every case of the table on one batch layout.
void RunBatch(const std::vector<std::pair<int32_t, int32_t>>& seqs, ThreadPool& pool) {
  const AttnCase cases[] = {{4, 4, 64, 0.0f, 0},   {8, 4, 128, 0.0f, 0}, {8, 2, 80, 0.0f, 0},
                            {4, 1, 64, 30.0f, 0},  {4, 2, 64, 0.0f, 5},  {8, 2, 128, 50.0f, 20},
                            {2, 2, 17, 0.0f, 0},   {32, 8, 64, 0.0f, 0}};
  const int64_t block_size = 16, max_blocks = 5;
  const int64_t num_seqs = seqs.size();
  std::vector<int32_t> query_start = {0}, context_lens;
  for (auto [ctx, nq] : seqs) {
    query_start.push_back(query_start.back() + nq);
    context_lens.push_back(ctx);
  }
  const int64_t num_tokens = query_start.back();
  // Every sequence gets max_blocks distinct physical blocks in shuffled order.
  std::vector<int32_t> block_tables(num_seqs * max_blocks);
  std::iota(block_tables.begin(), block_tables.end(), 0);
  std::shuffle(block_tables.begin(), block_tables.end(), std::mt19937(5));
  uint32_t seed = 100;
  for (const AttnCase& c : cases) {
    PagedKv cache{nullptr, nullptr, num_seqs * max_blocks, block_size, c.num_kv_heads,
                  c.head_dim};
    const int64_t cache_elems = cache.num_blocks * block_size * c.num_kv_heads * c.head_dim;
    std::vector<float> k = RandomFloats(cache_elems, ++seed);
    std::vector<float> v = RandomFloats(cache_elems, ++seed);
    cache.k = k.data();
    cache.v = v.data();
    const std::vector<float> q = RandomFloats(num_tokens * c.num_heads * c.head_dim, ++seed);
    AttentionParams params;
    params.num_heads = c.num_heads;
    params.num_kv_heads = c.num_kv_heads;
    params.head_dim = c.head_dim;
    params.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim)) * 4.0f;  // peaky softmax
    params.softcap = c.softcap;
    params.sliding_window = c.sliding_window;
    std::vector<float> got(q.size(), NAN), want(q.size());
    PagedAttention(q.data(), cache, block_tables.data(), max_blocks, query_start.data(),
                   context_lens.data(), num_seqs, params, got.data(), pool);
    reference::PagedAttention(q.data(), cache, block_tables.data(), max_blocks,
                              query_start.data(), context_lens.data(), num_seqs, params,
                              want.data());
    ExpectClose(got, want, {}, 1e-5f, 2e-5f,
                absl::StrCat("heads=", c.num_heads, "/", c.num_kv_heads, " d=", c.head_dim,
                             " softcap=", c.softcap, " window=", c.sliding_window));
  }
}

TEST_P(AttentionTest, MatchesReference) {
  ThreadPool pool(2);
  // (context_len, num_queries) per sequence. A mixed batch (decodes, a fresh prefill, a
  // chunked prefill: whole-token work items) and a single decode (KV heads split across items).
  const std::vector<std::pair<int32_t, int32_t>> batches[] = {
      {{1, 1}, {37, 1}, {50, 50}, {70, 23}, {16, 1}}, {{75, 1}}};
  for (const auto& seqs : batches) {
    RunBatch(seqs, pool);
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, AttentionTest, testing::ValuesIn(SupportedIsas()),
                         IsaParamName);

}  // namespace
}  // namespace strata::kernels::cpu

// Scheduler without a cluster: what each step contains, chunked prefill, decode-first order,
// preemption of the most recently admitted sequence, prefix reuse, and blocks coming back.
#include "coordinator/engine/scheduler.h"

#include <memory>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"

namespace strata::engine {
namespace {

struct Fixture {
  Fixture(int64_t blocks, int32_t block_size, SchedulerOptions options, bool caching = true)
      : manager(blocks, block_size, caching), scheduler(manager, options) {}

  Sequence* Add(int32_t prompt_len, int32_t first_token = 1, int32_t priority = 0) {
    auto seq = std::make_unique<Sequence>();
    seq->priority = priority;
    seq->id = seqs.size() + 1;
    seq->arrival = static_cast<int64_t>(seqs.size());
    seq->tokens.resize(prompt_len);
    std::iota(seq->tokens.begin(), seq->tokens.end(), first_token);
    seq->num_prompt = prompt_len;
    seqs.push_back(std::move(seq));
    scheduler.Add(seqs.back().get());
    return seqs.back().get();
  }

  // Runs one step and appends token 7 to every sequence that sampled.
  ScheduledStep Step() {
    std::optional<ScheduledStep> step = scheduler.Schedule();
    EXPECT_TRUE(step.has_value());
    if (!step) return {};
    scheduler.Complete(*step);
    for (size_t i = 0; i < step->seqs.size(); ++i) {
      if (step->input.seqs[i].sample) step->seqs[i]->tokens.push_back(7);
    }
    return *step;
  }

  BlockManager manager;
  Scheduler scheduler;
  std::vector<std::unique_ptr<Sequence>> seqs;
};

TEST(SchedulerTest, ChunksLongPromptsAndRunsDecodesFirst) {
  Fixture f(64, 4, {.max_batched_tokens = 8, .max_seqs = 8});
  Sequence* a = f.Add(3);
  ScheduledStep s1 = f.Step();  // a's whole prompt
  ASSERT_EQ(s1.seqs.size(), 1u);
  EXPECT_TRUE(s1.input.seqs[0].sample);
  EXPECT_TRUE(s1.input.seqs[0].start);
  Sequence* b = f.Add(20);
  ScheduledStep s2 = f.Step();  // a decodes first, then 7 of b's 20 prompt tokens
  ASSERT_EQ(s2.seqs.size(), 2u);
  EXPECT_EQ(s2.seqs[0], a);
  EXPECT_EQ(s2.input.seqs[0].tokens.size(), 1u);
  EXPECT_EQ(s2.seqs[1], b);
  EXPECT_EQ(s2.input.seqs[1].tokens.size(), 7u);
  EXPECT_FALSE(s2.input.seqs[1].sample);
  EXPECT_EQ(s2.input.seqs[1].new_blocks.size(), 2u);  // 7 tokens in blocks of 4
  ScheduledStep s3 = f.Step();
  EXPECT_EQ(s3.input.seqs[1].num_cached, 7);
  EXPECT_FALSE(s3.input.seqs[1].start);
  EXPECT_EQ(s3.input.seqs[1].new_blocks.size(), 2u);  // blocks 3 and 4 (tokens 8..14)
  ScheduledStep s4 = f.Step();
  EXPECT_EQ(s4.input.seqs[1].tokens.size(), 6u);  // the last 6 prompt tokens
  EXPECT_TRUE(s4.input.seqs[1].sample);
  EXPECT_EQ(b->tokens.size(), 21u);
}

TEST(SchedulerTest, PreemptsTheMostRecentlyAdmittedAndRecomputesIt) {
  // 4 blocks of 4 tokens: two sequences of 6 tokens take 2 blocks each; growing past 8 tokens
  // needs a third block for one of them.
  Fixture f(4, 4, {.max_batched_tokens = 64, .max_seqs = 8}, /*caching=*/false);
  Sequence* a = f.Add(6, 1);
  Sequence* b = f.Add(6, 100);
  f.Step();  // both prefill 6 tokens (7 tokens each now)
  f.Step();  // both decode: 7 computed
  f.Step();  // both decode: 8 computed, their two blocks full
  EXPECT_EQ(f.manager.num_available(), 0);
  ScheduledStep s = f.Step();  // a needs a third block: b (admitted later) is preempted
  ASSERT_EQ(s.seqs.size(), 1u);
  EXPECT_EQ(s.seqs[0], a);
  EXPECT_EQ(f.scheduler.preemptions(), 1);
  EXPECT_EQ(b->status, SeqStatus::kWaiting);
  EXPECT_EQ(b->num_computed, 0);
  // When a finishes, b comes back with all 9 of its tokens to recompute.
  f.scheduler.Remove(a);
  ScheduledStep again = f.Step();
  ASSERT_EQ(again.seqs.size(), 1u);
  EXPECT_EQ(again.seqs[0], b);
  EXPECT_TRUE(again.input.seqs[0].start);
  EXPECT_EQ(again.input.seqs[0].tokens.size(), 9u);
  EXPECT_EQ(again.input.seqs[0].num_prompt_tokens, 6);
  EXPECT_TRUE(again.input.seqs[0].sample);
  // a's release travels with that step.
  EXPECT_EQ(again.input.release, (std::vector<uint64_t>{a->id}));
  f.scheduler.Remove(b);
  EXPECT_EQ(f.manager.num_available(), 4);
}

TEST(SchedulerTest, ReusesCachedPrefixBlocks) {
  Fixture f(32, 4, {.max_batched_tokens = 64, .max_seqs = 8});
  Sequence* a = f.Add(10);
  f.Step();
  f.scheduler.Remove(a);                 // its two full prompt blocks stay cached
  Sequence* b = f.Add(13);               // same first 10 tokens, longer
  ScheduledStep s = f.Step();
  ASSERT_EQ(s.seqs.size(), 1u);
  EXPECT_EQ(s.input.seqs[0].num_cached, 8);     // two blocks of 4 from the cache
  EXPECT_EQ(s.input.seqs[0].tokens.size(), 5u);
  EXPECT_EQ(s.input.seqs[0].new_blocks.size(), 4u);  // the whole table: 2 cached + 2 new
  EXPECT_EQ(f.manager.hit_blocks(), 2);
  // A prompt that is entirely cached still computes its last token.
  f.scheduler.Remove(b);
  Sequence* c = f.Add(8);
  ScheduledStep t = f.Step();
  EXPECT_EQ(t.input.seqs[0].num_cached, 4);
  EXPECT_EQ(t.input.seqs[0].tokens.size(), 4u);
  f.scheduler.Remove(c);
  EXPECT_EQ(f.manager.num_available(), 32);
}

TEST(SchedulerTest, AdmissionIsFirstComeFirstServedWithinPriority) {
  Fixture f(64, 4, {.max_batched_tokens = 64, .max_seqs = 1});
  Sequence* low = f.Add(2);
  Sequence* high = f.Add(2, 1, /*priority=*/5);
  ScheduledStep s = f.Step();
  ASSERT_EQ(s.seqs.size(), 1u);
  EXPECT_EQ(s.seqs[0], high);
  EXPECT_EQ(low->status, SeqStatus::kWaiting);  // max_seqs = 1
}

}  // namespace
}  // namespace strata::engine

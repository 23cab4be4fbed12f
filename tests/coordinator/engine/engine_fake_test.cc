// The engine against a scripted executor (fake_executor.h): scheduling, chunked prefill,
// cancellation and failure recovery in milliseconds.
#include <chrono>
#include <thread>
#include <vector>

#include "coordinator/engine/engine.h"
#include "gtest/gtest.h"
#include "tests/coordinator/engine/fake_executor.h"

namespace strata::engine {
namespace {

using testing::Events;
using testing::Expected;
using testing::FakeExecutor;
using testing::kEos;
using testing::kOverflow;
using testing::kRefused;
using testing::Request;

TEST(EngineFakeTest, ConcurrentRequestsGetTheirOwnTokensWithinTheStepBudget) {
  FakeExecutor executor;
  EngineOptions options;
  options.scheduler.max_batched_tokens = 64;  // long prompts prefill in chunks
  auto engine = Engine::Start(executor, nullptr, options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  Events events;
  std::vector<std::pair<uint64_t, GenerationRequest>> added;
  for (int i = 0; i < 24; ++i) {
    GenerationRequest r = Request(i, 1 + (i * 37) % 150, 1 + i % 9);
    auto id = (*engine)->Add(r, events.Callback());
    ASSERT_TRUE(id.ok()) << id.status();
    added.emplace_back(*id, r);
  }
  events.WaitFor(24);
  for (const auto& [id, r] : added) {
    EXPECT_EQ(events.Get(id).tokens, Expected(r.prompt, static_cast<int>(r.max_tokens))) << id;
    EXPECT_EQ(events.Get(id).finish, FinishReason::kLength);
  }
  EXPECT_LE(executor.max_tokens_seen(), 64);
  const EngineStats stats = (*engine)->stats();
  EXPECT_EQ(stats.kv_blocks_free, stats.kv_blocks);
}

TEST(EngineFakeTest, AFailedStepIsRecomputedOnceTheExecutorRecovers) {
  FakeExecutor executor;
  auto engine = Engine::Start(executor, nullptr, {});
  ASSERT_TRUE(engine.ok());
  Events events;
  const GenerationRequest r = Request(5, 20, 12);
  executor.FailSteps(2, /*recovers=*/true);
  auto id = (*engine)->Add(r, events.Callback());
  ASSERT_TRUE(id.ok());
  events.WaitFor(1);
  EXPECT_EQ(events.Get(*id).tokens, Expected(r.prompt, 12));
  EXPECT_EQ(events.Get(*id).finish, FinishReason::kLength);
}

TEST(EngineFakeTest, AnExecutorThatStaysDownEndsRequestsWithAnError) {
  FakeExecutor executor;
  EngineOptions options;
  options.recovery_timeout = std::chrono::milliseconds(0);
  auto engine = Engine::Start(executor, nullptr, options);
  ASSERT_TRUE(engine.ok());
  Events events;
  executor.FailSteps(1, /*recovers=*/false);
  auto a = (*engine)->Add(Request(1, 10, 5), events.Callback());
  auto b = (*engine)->Add(Request(2, 10, 5), events.Callback());
  ASSERT_TRUE(a.ok() && b.ok());
  events.WaitFor(2);
  for (uint64_t id : {*a, *b}) {
    EXPECT_EQ(events.Get(id).finish, FinishReason::kError);
    EXPECT_NE(events.Get(id).error.message().find("rank 0 died"), std::string::npos)
        << events.Get(id).error;
  }
}

// While the cluster is down, requests that have had nothing computed (the one whose first
// step failed, one that arrives meanwhile) queue for at most max_queue_time and then end with
// Unavailable (the gateway's 503), long before the recovery gives up.
TEST(EngineFakeTest, RequestsQueuedWhileTheClusterIsDownTimeOut) {
  FakeExecutor executor;
  EngineOptions options;
  options.recovery_timeout = std::chrono::seconds(5);
  options.max_queue_time = std::chrono::milliseconds(200);
  auto engine = Engine::Start(executor, nullptr, options);
  ASSERT_TRUE(engine.ok());
  Events events;
  executor.FailSteps(1, /*recovers=*/false);
  const auto start = std::chrono::steady_clock::now();
  auto first = (*engine)->Add(Request(1, 10, 5), events.Callback());
  ASSERT_TRUE(first.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // its step has failed by now
  auto later = (*engine)->Add(Request(2, 10, 5), events.Callback());
  ASSERT_TRUE(later.ok());
  events.WaitFor(2);
  const auto took = std::chrono::steady_clock::now() - start;
  for (uint64_t id : {*first, *later}) {
    EXPECT_EQ(events.Get(id).finish, FinishReason::kError);
    EXPECT_EQ(events.Get(id).error.code(), absl::StatusCode::kUnavailable);
    EXPECT_NE(events.Get(id).error.message().find("in the queue without starting"),
              std::string::npos) << events.Get(id).error;
    EXPECT_NE(events.Get(id).error.message().find("the cluster is recovering"),
              std::string::npos) << events.Get(id).error;
  }
  EXPECT_GE(took, std::chrono::milliseconds(250));
  EXPECT_LT(took, std::chrono::seconds(3));
}

// A numerical blow-up in one sequence (its logits NaN) ends that request with an error; the
// requests batched with it get their tokens and every block comes back.
TEST(EngineFakeTest, NonFiniteLogitsEndOnlyTheirOwnRequest) {
  FakeExecutor executor;
  auto engine = Engine::Start(executor, nullptr, {});
  ASSERT_TRUE(engine.ok());
  Events events;
  GenerationRequest bad = Request(4, 12, 8);
  bad.prompt.push_back(kOverflow);
  std::vector<std::pair<uint64_t, GenerationRequest>> good;
  for (int i = 0; i < 3; ++i) {
    const GenerationRequest r = Request(10 * i, 12, 8);
    auto id = (*engine)->Add(r, events.Callback());
    ASSERT_TRUE(id.ok());
    good.emplace_back(*id, r);
    if (i == 1) {
      auto b = (*engine)->Add(bad, events.Callback());
      ASSERT_TRUE(b.ok());
      good.emplace_back(*b, bad);
    }
  }
  events.WaitFor(4);
  for (const auto& [id, r] : good) {
    const Events::Result got = events.Get(id);
    if (r.prompt.back() == kOverflow) {
      EXPECT_EQ(got.finish, FinishReason::kError);
      EXPECT_EQ(got.error.code(), absl::StatusCode::kInternal);
      EXPECT_NE(got.error.message().find("not finite"), std::string::npos) << got.error;
      EXPECT_TRUE(got.tokens.empty());
    } else {
      EXPECT_EQ(got.finish, FinishReason::kLength);
      EXPECT_EQ(got.tokens, Expected(r.prompt, 8));
    }
  }
  const EngineStats stats = (*engine)->stats();
  EXPECT_EQ(stats.kv_blocks_free, stats.kv_blocks);
  EXPECT_EQ(stats.sequence_faults, 1);
  EXPECT_EQ(stats.cluster_failures, 0);
}

// A step the (healthy) workers refuse is not a lost cluster: its request ends with the
// reason, nothing is reloaded or recomputed, and the prefix cache stays.
TEST(EngineFakeTest, ARefusedStepEndsItsRequestsAndKeepsTheCache) {
  FakeExecutor executor;
  auto engine = Engine::Start(executor, nullptr, {});
  ASSERT_TRUE(engine.ok());
  Events events;
  const GenerationRequest warm = Request(7, 48, 4);  // three full blocks of 16
  auto first = (*engine)->Add(warm, events.Callback());
  ASSERT_TRUE(first.ok());
  events.WaitFor(1);
  GenerationRequest refused = Request(30, 10, 4);
  refused.prompt[4] = kRefused;
  auto bad = (*engine)->Add(refused, events.Callback());
  ASSERT_TRUE(bad.ok());
  events.WaitFor(2);
  const Events::Result got = events.Get(*bad);
  EXPECT_EQ(got.finish, FinishReason::kError);
  EXPECT_EQ(got.error.code(), absl::StatusCode::kInternal);
  EXPECT_NE(got.error.message().find("holds token 0"), std::string::npos) << got.error;

  const int64_t hits_before = (*engine)->stats().prefix_hit_blocks;
  auto again = (*engine)->Add(warm, events.Callback());
  ASSERT_TRUE(again.ok());
  events.WaitFor(3);
  EXPECT_EQ(events.Get(*again).tokens, Expected(warm.prompt, 4));
  const EngineStats stats = (*engine)->stats();
  EXPECT_EQ(stats.prefix_hit_blocks - hits_before, 2);  // the last prompt token is recomputed
  EXPECT_EQ(stats.cluster_failures, 0);
  EXPECT_EQ(stats.recoveries, 0);
  EXPECT_EQ(stats.sequence_faults, 1);
  EXPECT_EQ(stats.kv_blocks_free, stats.kv_blocks);
}

// Fair share: with room for one sequence at a time, a tenant that queued four requests does
// not make a second tenant's two wait behind all of them; they take turns.
TEST(EngineFakeTest, TenantsTakeTurnsInTheQueue) {
  FakeExecutor executor;
  EngineOptions options;
  options.scheduler.max_seqs = 1;
  auto engine = Engine::Start(executor, nullptr, options);
  ASSERT_TRUE(engine.ok());
  std::mutex mu;
  std::vector<std::string> order;
  auto add = [&](const std::string& name, const std::string& tenant) {
    GenerationRequest r = Request(static_cast<int32_t>(order.size() + name.size()), 8, 6);
    r.tenant = tenant;
    return (*engine)->Add(r, [&, name](const SampleOutput& e) {
      if (e.finish != FinishReason::kNone) {
        std::lock_guard<std::mutex> lock(mu);
        order.push_back(name);
      }
      return true;
    });
  };
  // a1 is being computed while the rest arrive, so the order is the queue's alone.
  executor.Hold();
  ASSERT_TRUE(add("a1", "a").ok());
  ASSERT_TRUE(executor.WaitUntilHeld());
  for (const char* name : {"a2", "a3", "a4"}) ASSERT_TRUE(add(name, "a").ok());
  for (const char* name : {"b1", "b2"}) ASSERT_TRUE(add(name, "b").ok());
  executor.Release();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (order.size() == 6) break;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(order, (std::vector<std::string>{"a1", "b1", "a2", "b2", "a3", "a4"}));
}

TEST(EngineFakeTest, CancellationAndStopIdsFreeEveryBlock) {
  FakeExecutor executor;
  auto engine = Engine::Start(executor, nullptr, {});
  ASSERT_TRUE(engine.ok());
  Events events;
  auto cancelled = (*engine)->Add(Request(3, 40, 100), events.Callback(/*cancel_after=*/3));
  GenerationRequest stop = Request(4, 8, 100);
  const std::vector<int32_t> expected = Expected(stop.prompt, 100);
  // The first token from the third on that is new: generation must end right after it.
  size_t at = 2;
  while (std::find(expected.begin(), expected.begin() + at, expected[at]) != expected.begin() + at) {
    ++at;
  }
  stop.stop_token_ids = {expected[at]};
  auto stopped = (*engine)->Add(stop, events.Callback());
  ASSERT_TRUE(cancelled.ok() && stopped.ok());
  events.WaitFor(2);
  EXPECT_EQ(events.Get(*cancelled).finish, FinishReason::kCancelled);
  EXPECT_EQ(events.Get(*stopped).finish, FinishReason::kStop);
  const std::vector<int32_t> until_stop(expected.begin(), expected.begin() + at + 1);
  EXPECT_EQ(events.Get(*stopped).tokens, until_stop);
  const EngineStats stats = (*engine)->stats();
  EXPECT_EQ(stats.kv_blocks_free, stats.kv_blocks);
  EXPECT_EQ(stats.running + stats.waiting, 0);
}

TEST(EngineFakeTest, AStepBudgetAboveTheExecutorsIsRefused) {
  FakeExecutor executor;
  EngineOptions options;
  options.scheduler.max_batched_tokens = 4096;
  auto engine = Engine::Start(executor, nullptr, options);
  ASSERT_FALSE(engine.ok());
  EXPECT_NE(engine.status().message().find("step size of 2048"), std::string::npos)
      << engine.status();
}

}  // namespace
}  // namespace strata::engine

// ReplicaRouter over engines on scripted executors (fake_executor.h): routing by prefix
// affinity, and failover that continues a failed replica's streams on a healthy one with
// exactly the tokens they would have produced (the fake model's tokens are known in advance).
// The same with real worker processes and seeded sampling: tests/integration/chaos_test.cc.
#include <memory>
#include <vector>

#include "coordinator/engine/replica_router.h"
#include "gtest/gtest.h"
#include "tests/coordinator/engine/fake_executor.h"

namespace strata::engine {
namespace {

using testing::Events;
using testing::Expected;
using testing::FakeExecutor;
using testing::Request;

struct Replicas {
  explicit Replicas(int n) {
    EngineOptions options;
    options.hand_off_on_failure = n > 1;
    std::vector<Replica> replicas;
    for (int i = 0; i < n; ++i) {
      executors.push_back(std::make_unique<FakeExecutor>());
      auto engine = Engine::Start(*executors.back(), nullptr, options);
      EXPECT_TRUE(engine.ok()) << engine.status();
      engines.push_back(*std::move(engine));
      replicas.push_back({executors.back().get(), engines.back().get()});
    }
    auto created = ReplicaRouter::Create(std::move(replicas));
    EXPECT_TRUE(created.ok()) << created.status();
    router = *std::move(created);
  }
  ~Replicas() { engines.clear(); }  // before the router: their last events go to it

  std::vector<std::unique_ptr<FakeExecutor>> executors;
  std::unique_ptr<ReplicaRouter> router;
  std::vector<std::unique_ptr<Engine>> engines;
};

TEST(ReplicaRouterTest, AFailedReplicasStreamsContinueElsewhereWithTheirExactTokens) {
  Replicas r(2);
  Events events;
  std::vector<std::pair<uint64_t, GenerationRequest>> added;
  // Long enough to be mid-stream when replica 0 dies; prompts of two blocks spread by affinity.
  r.executors[0]->DieAfterSteps(8);
  for (int i = 0; i < 12; ++i) {
    GenerationRequest g = Request(i * 5, 32 + i, 60);
    auto id = r.router->Add(g, events.Callback());
    ASSERT_TRUE(id.ok()) << id.status();
    added.emplace_back(*id, g);
  }
  events.WaitFor(12);
  for (const auto& [id, g] : added) {
    const Events::Result got = events.Get(id);
    EXPECT_EQ(got.finish, FinishReason::kLength) << got.error;
    EXPECT_EQ(got.tokens, Expected(g.prompt, 60)) << "request " << id;
  }
  const EngineStats stats = r.router->stats();
  EXPECT_GT(stats.handed_off, 0) << "replica 0 served none of the requests";
  EXPECT_EQ(r.router->moved(), stats.handed_off);
  EXPECT_EQ(r.engines[1]->stats().kv_blocks_free, r.engines[1]->stats().kv_blocks);
  EXPECT_TRUE(r.router->health().ok());  // replica 1 is up
}

TEST(ReplicaRouterTest, EverySampleOfAnNRequestMovesAndKeepsItsIndexAndPromptFigures) {
  Replicas r(2);
  std::mutex mu;
  std::map<int, std::vector<int32_t>> tokens;
  std::map<int, int64_t> prompt_reported;
  std::map<int, FinishReason> finish;
  std::condition_variable done;
  GenerationRequest g = Request(7, 40, 30);
  g.n = 4;
  // Find the replica this prompt prefers, and kill that one mid-stream.
  auto probe = r.router->Add(Request(7, 40, 1), [](const SampleOutput&) { return true; });
  ASSERT_TRUE(probe.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const int preferred = r.engines[0]->stats().steps > 0 ? 0 : 1;
  r.executors[preferred]->DieAfterSteps(6);
  auto id = r.router->Add(g, [&](const SampleOutput& e) {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_GE(e.index, 0);
    EXPECT_LT(e.index, 4);
    tokens[e.index].insert(tokens[e.index].end(), e.token_ids.begin(), e.token_ids.end());
    prompt_reported[e.index] += e.prompt_tokens;
    if (e.finish != FinishReason::kNone) {
      finish[e.index] = e.finish;
      done.notify_all();
    }
    return true;
  });
  ASSERT_TRUE(id.ok());
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(done.wait_for(lock, std::chrono::seconds(20), [&] { return finish.size() == 4; }));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(finish[i], FinishReason::kLength) << "sample " << i;
    EXPECT_EQ(tokens[i], Expected(g.prompt, 30)) << "sample " << i;
    EXPECT_EQ(prompt_reported[i], 40) << "sample " << i << ": prompt figures reported once";
  }
  EXPECT_GT(r.router->moved(), 0);
}

TEST(ReplicaRouterTest, PromptsSharingAFirstBlockMeetTheSamePrefixCache) {
  Replicas r(2);
  Events events;
  for (int i = 0; i < 8; ++i) {
    GenerationRequest g = Request(3, 32, 2);  // the same two blocks
    g.prompt.push_back(10 + i);               // then their own token
    auto id = r.router->Add(g, events.Callback());
    ASSERT_TRUE(id.ok());
    events.WaitFor(i + 1);  // one at a time: each can find the previous one's blocks
  }
  // All eight went to one replica, so the seven after the first hit both blocks.
  EXPECT_EQ(r.router->stats().prefix_hit_blocks, 7 * 2);
  EXPECT_TRUE(r.engines[0]->stats().steps == 0 || r.engines[1]->stats().steps == 0);
}

TEST(ReplicaRouterTest, CancellingAMovedRequestStopsItsContinuation) {
  Replicas r(2);
  Events events;
  r.executors[0]->DieAfterSteps(3);
  r.executors[1]->DieAfterSteps(3);
  std::vector<uint64_t> ids;
  for (int i = 0; i < 4; ++i) {
    auto id = r.router->Add(Request(i * 11, 20, 200), events.Callback());
    ASSERT_TRUE(id.ok());
    ids.push_back(*id);
  }
  // Both replicas die; each one's samples wait on the other (down too) until cancelled.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (uint64_t id : ids) r.router->Cancel(id);
  events.WaitFor(4);
  for (uint64_t id : ids) EXPECT_EQ(events.Get(id).finish, FinishReason::kCancelled);
}

TEST(ReplicaRouterTest, OneReplicaIsAPassThrough) {
  Replicas r(1);
  Events events;
  const GenerationRequest g = Request(1, 10, 12);
  auto id = r.router->Add(g, events.Callback());
  ASSERT_TRUE(id.ok());
  events.WaitFor(1);
  EXPECT_EQ(events.Get(*id).tokens, Expected(g.prompt, 12));
  EXPECT_EQ(r.router->max_model_len(), r.engines[0]->max_model_len());
  EXPECT_FALSE(r.router->Add(Request(1, 10, 100000), events.Callback()).ok());
}

}  // namespace
}  // namespace strata::engine

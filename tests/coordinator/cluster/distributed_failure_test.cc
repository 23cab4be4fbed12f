// Failure handling of the distributed runtime with real worker processes: a worker that never
// registers, one that dies (SIGKILL) and one that hangs (SIGSTOP) are each detected within a
// bounded time with an error naming it, and the cluster recovers (reloads every rank) once a
// worker is back, producing the same tokens as before the failure.
#include <signal.h>

#include <chrono>
#include <string>
#include <vector>

#include "coordinator/engine/batch_generate.h"
#include "gtest/gtest.h"
#include "tests/coordinator/cluster/local_cluster.h"
#include "tests/testing/shared_data.h"
#include "worker/model/synthetic_model.h"

namespace strata {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

const std::vector<std::vector<int32_t>> kPrompts = {{1, 403, 407, 261}, {1, 300, 301}};

std::string TestModel() {
  SyntheticModelSpec spec;
  spec.name = "failure-test";
  spec.num_layers = 2;
  const std::string path = (testing::TempDir("distributed_failure") / "model.gguf").string();
  EXPECT_TRUE(WriteSyntheticModel(spec, path).ok());
  return path;
}

ExecutorOptions FastOptions(const std::string& model, int tp) {
  ExecutorOptions options;
  options.model = model;
  options.tp = tp;
  options.max_kv_blocks = 32;
  options.min_kv_tokens = 64;
  options.worker_wait = std::chrono::seconds(20);
  options.step_timeout = std::chrono::seconds(5);
  options.comm_timeout = std::chrono::seconds(3);
  return options;
}

MembershipOptions FastLeases() {
  MembershipOptions m;
  m.heartbeat_interval = milliseconds(100);
  m.lease = milliseconds(1000);
  m.check_interval = milliseconds(50);
  return m;
}

// The prompts through the engine, which gives up at once when a step fails (no waiting for a
// recovery), so a failure shows as this call's error.
absl::StatusOr<engine::BatchGenerateResult> Generate(ClusterExecutor& executor) {
  engine::BatchGenerateOptions options;
  options.max_new_tokens = 6;
  options.sampling.temperature = 0;
  options.stop_at_eos = false;
  options.engine.recovery_timeout = milliseconds(0);
  return engine::GenerateBatch(executor, kPrompts, options);
}

std::vector<std::vector<int32_t>> Tokens(const engine::BatchGenerateResult& r) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& s : r.sequences) out.push_back(s.tokens);
  return out;
}

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

TEST(DistributedFailureTest, WorkerThatNeverRegistersIsReported) {
  ExecutorOptions options = FastOptions(TestModel(), /*tp=*/2);
  options.worker_wait = milliseconds(1500);
  const auto start = Clock::now();
  auto cluster = testing::StartLocalCluster(options, /*workers=*/1, FastLeases());
  ASSERT_FALSE(cluster.ok());
  EXPECT_EQ(cluster.status().code(), absl::StatusCode::kDeadlineExceeded) << cluster.status();
  EXPECT_NE(cluster.status().message().find("for 2 worker(s)"), std::string::npos)
      << cluster.status();
  EXPECT_NE(cluster.status().message().find("registered: 1@127.0.0.1:"), std::string::npos)
      << cluster.status();
  EXPECT_LT(SecondsSince(start), 10.0);
}

TEST(DistributedFailureTest, DeadWorkerIsDetectedAndReplaced) {
  auto cluster = testing::StartLocalCluster(FastOptions(TestModel(), 2), 2, FastLeases());
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ClusterExecutor& executor = *(*cluster)->executor;
  auto before = Generate(executor);
  ASSERT_TRUE(before.ok()) << before.status();

  (*cluster)->workers[0]->Signal(1, SIGKILL);
  const auto killed = Clock::now();
  absl::StatusOr<engine::BatchGenerateResult> during = absl::UnknownError("not run");
  // The first generation may start before the executor notices; it must fail, not hang.
  while (SecondsSince(killed) < 10 && (during = Generate(executor)).ok()) {
  }
  ASSERT_FALSE(during.ok());
  EXPECT_EQ(during.status().code(), absl::StatusCode::kUnavailable) << during.status();
  EXPECT_NE(during.status().message().find("rank"), std::string::npos) << during.status();
  EXPECT_LT(SecondsSince(killed), 6.0) << during.status();
  std::printf("dead worker reported after %.2f s: %s\n", SecondsSince(killed),
              std::string(during.status().message()).c_str());

  ASSERT_TRUE((*cluster)->SpawnWorkers(1).ok());
  ASSERT_TRUE(executor.WaitReady(std::chrono::seconds(30)).ok()) << executor.health();
  EXPECT_GT(executor.generation(), 1u);
  auto after = Generate(executor);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(Tokens(*after), Tokens(*before));
}

TEST(DistributedFailureTest, HungWorkerIsDetectedAndRecoversWhenItResumes) {
  auto cluster = testing::StartLocalCluster(FastOptions(TestModel(), 2), 2, FastLeases());
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ClusterExecutor& executor = *(*cluster)->executor;
  auto before = Generate(executor);
  ASSERT_TRUE(before.ok()) << before.status();

  (*cluster)->workers[0]->Signal(0, SIGSTOP);
  ASSERT_TRUE(testing::WaitUntilStopped((*cluster)->workers[0]->pids()[0]));
  const auto stopped = Clock::now();
  auto during = Generate(executor);
  ASSERT_FALSE(during.ok());
  EXPECT_EQ(during.status().code(), absl::StatusCode::kUnavailable) << during.status();
  EXPECT_LT(SecondsSince(stopped), 6.0) << during.status();
  std::printf("hung worker reported after %.2f s: %s\n", SecondsSince(stopped),
              std::string(during.status().message()).c_str());
  EXPECT_FALSE(executor.health().ok());

  (*cluster)->workers[0]->Signal(0, SIGCONT);
  ASSERT_TRUE(executor.WaitReady(std::chrono::seconds(30)).ok()) << executor.health();
  auto after = Generate(executor);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(Tokens(*after), Tokens(*before));
}

// Heartbeats are slow here (a 30 s lease), so only the step deadline can catch the silence.
TEST(DistributedFailureTest, SilentWorkerFailsTheStepWithinTheStepTimeout) {
  ExecutorOptions options = FastOptions(TestModel(), 2);
  options.step_timeout = milliseconds(1500);
  MembershipOptions slow = FastLeases();
  slow.lease = std::chrono::seconds(30);
  auto cluster = testing::StartLocalCluster(options, 2, slow);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ClusterExecutor& executor = *(*cluster)->executor;
  auto before = Generate(executor);
  ASSERT_TRUE(before.ok()) << before.status();

  (*cluster)->workers[0]->Signal(1, SIGSTOP);
  ASSERT_TRUE(testing::WaitUntilStopped((*cluster)->workers[0]->pids()[1]));
  const auto stopped = Clock::now();
  auto during = Generate(executor);
  ASSERT_FALSE(during.ok());
  EXPECT_NE(during.status().message().find("did not answer within 1500 ms"), std::string::npos)
      << during.status();
  EXPECT_NE(during.status().message().find("do not answer health probes"), std::string::npos)
      << during.status();
  EXPECT_LT(SecondsSince(stopped), 4.0) << during.status();

  (*cluster)->workers[0]->Signal(1, SIGCONT);
  ASSERT_TRUE(executor.WaitReady(std::chrono::seconds(30)).ok()) << executor.health();
  auto after = Generate(executor);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(Tokens(*after), Tokens(*before));
}

}  // namespace
}  // namespace strata

// `strata serve` heals itself: a worker process killed mid-stream is restarted, the group is
// reloaded, and every stream in progress resumes by recompute and ends with exactly the tokens
// it would have had without the fault. A worker that keeps dying ends serve with a clear error
// instead of a restart spin.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "boost/json.hpp"
#include "gtest/gtest.h"
#include "tests/integration/completion_streams.h"
#include "tests/testing/http_client.h"
#include "tests/testing/serve_process.h"

namespace strata {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr int kStreams = 8;
constexpr int kMaxTokens = 300;

json::object Request(int i, bool stream) { return testing::GreedyRequest(i, kMaxTokens, stream); }

std::unique_ptr<testing::ServeProcess> Serve(std::vector<std::string> args) {
  args.insert(args.end(), {"--tp", "2", "--threads", "1", "--served-model-name", "m"});
  auto serve = testing::ServeProcess::Start(args);
  EXPECT_TRUE(serve.ok()) << serve.status();
  return serve.ok() ? *std::move(serve) : nullptr;
}

// Waits until `serve` has `count` live workers, none of them one of `gone`.
std::vector<pid_t> WaitForWorkers(const testing::ServeProcess& serve, size_t count,
                                  const std::vector<pid_t>& gone = {}) {
  const auto deadline = Clock::now() + seconds(30);
  std::vector<pid_t> workers;
  while (Clock::now() < deadline) {
    workers = serve.Workers();
    const bool replaced = std::none_of(workers.begin(), workers.end(), [&](pid_t p) {
      return std::find(gone.begin(), gone.end(), p) != gone.end();
    });
    if (workers.size() == count && replaced) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return workers;
}

// Streams `kStreams` requests through `serve`, sends `sig` to one of its workers once every
// stream has its first tokens, and checks that every stream ends with exactly the tokens it
// had undisturbed, that a new process took the worker's place and the group is ready again.
void StreamsSurviveASignalToAWorker(testing::ServeProcess* serve, int sig) {
  ASSERT_NE(serve, nullptr);
  const int port = serve->port();
  // Undisturbed: the same requests, concurrently, before any fault.
  std::vector<std::vector<int32_t>> expected(kStreams);
  {
    std::vector<std::thread> clients;
    for (int i = 0; i < kStreams; ++i) {
      clients.emplace_back([&, i] {
        const testing::HttpResponse r =
            testing::HttpPost(port, "/v1/completions", json::serialize(Request(i, false)));
        ASSERT_EQ(r.status, 200) << r.body;
        const json::value body = json::parse(r.body);  // outlives the loop below
        for (const json::value& id : body.at("choices").at(0).at("token_ids").as_array()) {
          expected[i].push_back(static_cast<int32_t>(id.to_number<int64_t>()));
        }
      });
    }
    for (std::thread& t : clients) t.join();
  }
  const std::vector<pid_t> workers = WaitForWorkers(*serve, 2);
  ASSERT_EQ(workers.size(), 2u);

  // The same requests streamed (HTTP/1.0: the raw body is the event stream), a worker killed
  // once every stream has its first tokens.
  std::vector<std::unique_ptr<testing::RawConnection>> streams;
  for (int i = 0; i < kStreams; ++i) {
    streams.push_back(std::make_unique<testing::RawConnection>(port));
    ASSERT_TRUE(streams.back()->Send(testing::Http10Post(Request(i, true))));
  }
  std::vector<std::string> raw(kStreams);
  for (int i = 0; i < kStreams; ++i) raw[i] = streams[i]->ReadUntil("token_ids", seconds(30));
  ASSERT_EQ(::kill(workers[1], sig), 0);
  for (int i = 0; i < kStreams; ++i) {
    bool closed = false;
    raw[i] += streams[i]->ReadToEnd(seconds(60), &closed);
    EXPECT_TRUE(closed) << "stream " << i << " still open";
    const testing::Streamed got = testing::ParseStream(raw[i]);
    EXPECT_TRUE(got.finished) << "stream " << i << " ended without finishing: " << got.error;
    EXPECT_EQ(got.ids, expected[i]) << "stream " << i;
  }

  // A new process took the killed one's place, the group is ready, and the fault is counted.
  const std::vector<pid_t> now = WaitForWorkers(*serve, 2, {workers[1]});
  EXPECT_EQ(now.size(), 2u);
  EXPECT_EQ(std::count(now.begin(), now.end(), workers[1]), 0);
  EXPECT_EQ(testing::HttpGet(port, "/ready").status, 200);
  const std::string metrics = testing::HttpGet(port, "/metrics").body;
  EXPECT_NE(metrics.find("strata_cluster_recoveries_total 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("strata_kv_cache_usage_ratio 0\n"), std::string::npos) << metrics;
  // One strata_worker_up series per rank, both up: the killed worker's is gone.
  size_t series = 0, up = 0;
  for (size_t at = 0; (at = metrics.find("\nstrata_worker_up{", at)) != std::string::npos; ++at) {
    ++series;
    up += metrics.compare(metrics.find('\n', at + 1) - 2, 2, " 1") == 0;
  }
  EXPECT_EQ(series, 2u) << metrics;
  EXPECT_EQ(up, 2u) << metrics;
  const std::string log = serve->Log();
  EXPECT_NE(log.find("recomputing " + std::to_string(kStreams) + " running sequence(s)"),
            std::string::npos) << log;
}

TEST(SelfHealingTest, AKilledWorkerIsRestartedAndEveryStreamEndsWithItsUndisturbedTokens) {
  auto serve = Serve({});
  StreamsSurviveASignalToAWorker(serve.get(), SIGKILL);
  ASSERT_NE(serve, nullptr);
  const std::string log = serve->Log();
  EXPECT_NE(log.find("killed by signal 9; restarting it"), std::string::npos) << log;
}

// SIGTERM (Kubernetes stopping a worker pod): the worker lets its step in flight finish,
// deregisters so the coordinator counts it gone at once (not after its lease), and exits 0.
TEST(SelfHealingTest, AWorkerStoppedBySigtermDeregistersAndIsReplaced) {
  auto serve = Serve({"--lease-ms", "60000"});  // a lease would not notice in time
  StreamsSurviveASignalToAWorker(serve.get(), SIGTERM);
  ASSERT_NE(serve, nullptr);
  const std::string log = serve->Log();
  EXPECT_NE(log.find("worker finishing its step in flight, then deregistering"),
            std::string::npos) << log;
  EXPECT_NE(log.find("marked dead: left (signal 15)"), std::string::npos) << log;
  EXPECT_NE(log.find("exited with code 0; restarting it"), std::string::npos) << log;
}

// Without restarts the group stays down: /ready says so, and a new request waits in the queue
// for --max-queue-ms, then gets 503 with Retry-After (never a hang).
TEST(SelfHealingTest, WhileTheGroupIsDownANewRequestIsRefusedAfterTheQueueBound) {
  auto serve = Serve({"--worker-restarts", "0", "--max-queue-ms", "500"});
  ASSERT_NE(serve, nullptr);
  const int port = serve->port();
  ASSERT_EQ(testing::HttpPost(port, "/v1/completions", json::serialize(Request(0, false))).status,
            200);
  const std::vector<pid_t> workers = WaitForWorkers(*serve, 2);
  ASSERT_EQ(workers.size(), 2u);
  ASSERT_EQ(::kill(workers[0], SIGKILL), 0);
  const auto deadline = Clock::now() + seconds(10);
  while (testing::HttpGet(port, "/ready").status == 200 && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_EQ(testing::HttpGet(port, "/ready").status, 503);
  for (bool stream : {false, true}) {
    const auto start = Clock::now();
    const testing::HttpResponse r =
        testing::HttpPost(port, "/v1/completions", json::serialize(Request(1, stream)));
    const auto took = Clock::now() - start;
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_EQ(r.retry_after, "1");
    EXPECT_NE(r.body.find("in the queue without starting"), std::string::npos) << r.body;
    EXPECT_GE(took, milliseconds(500));
    EXPECT_LT(took, seconds(5));
  }
}

TEST(SelfHealingTest, AWorkerThatKeepsDyingEndsServeWithAClearError) {
  auto serve = Serve({"--worker-restarts", "2"});
  ASSERT_NE(serve, nullptr);
  std::vector<pid_t> seen = WaitForWorkers(*serve, 2);
  ASSERT_EQ(seen.size(), 2u);
  pid_t victim = seen[0];
  // Kill the same worker (each time, the process that replaced it) three times: two restarts
  // are allowed, the third death is a crash loop.
  for (int kill = 0; kill < 3; ++kill) {
    ASSERT_EQ(::kill(victim, SIGKILL), 0);
    if (kill == 2) break;
    const std::vector<pid_t> now = WaitForWorkers(*serve, 2, {victim});
    ASSERT_EQ(now.size(), 2u) << serve->Log();
    for (pid_t p : now) {
      if (std::find(seen.begin(), seen.end(), p) == seen.end()) victim = p;
    }
    seen.insert(seen.end(), now.begin(), now.end());
  }
  const int status = serve->Wait(seconds(30));
  const std::string log = serve->Log();
  ASSERT_NE(status, -1) << "serve kept running:\n" << log;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << "\n" << log;
  EXPECT_NE(log.find("is crash-looping"), std::string::npos) << log;
}

}  // namespace
}  // namespace strata

// `strata serve` stops as an orchestrator expects: on SIGTERM /ready turns 503 at once, new
// requests get 503 with Retry-After, the streams in progress run to their end, and the process
// exits 0.
#include <signal.h>
#include <sys/wait.h>

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

constexpr int kStreams = 4;
constexpr int64_t kMaxTokens = 1200;

TEST(DrainTest, SigtermLetsStreamsFinishRefusesNewRequestsAndExitsZero) {
  auto serve = testing::ServeProcess::Start(
      {"--served-model-name", "m", "--drain-timeout-s", "60", "--api-keys", "k"});
  ASSERT_TRUE(serve.ok()) << serve.status();
  const int port = (*serve)->port();
  std::vector<std::unique_ptr<testing::RawConnection>> streams;
  std::vector<std::string> raw(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    streams.push_back(std::make_unique<testing::RawConnection>(port));
    std::string request = testing::Http10Post(testing::GreedyRequest(i, kMaxTokens, true));
    request.insert(request.find("\r\n") + 2, "Authorization: Bearer k\r\n");
    ASSERT_TRUE(streams.back()->Send(request));
  }
  for (int i = 0; i < kStreams; ++i) {
    raw[i] = streams[i]->ReadUntil("token_ids", seconds(30));
    ASSERT_NE(raw[i].find("token_ids"), std::string::npos) << raw[i];
  }
  ASSERT_EQ(::kill((*serve)->pid(), SIGTERM), 0);

  // At once: not ready, and new work is refused (the operations endpoints still answer).
  const auto deadline = Clock::now() + seconds(5);
  testing::HttpResponse ready = testing::HttpGet(port, "/ready");
  while (ready.status == 200 && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
    ready = testing::HttpGet(port, "/ready");
  }
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("draining"), std::string::npos) << ready.body;
  const testing::HttpResponse refused = testing::HttpPost(
      port, "/v1/completions", json::serialize(testing::GreedyRequest(0, 4, false)), "k");
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(refused.retry_after, "1");
  EXPECT_NE(refused.body.find("shutting down"), std::string::npos) << refused.body;
  EXPECT_EQ(testing::HttpGet(port, "/health").status, 200);

  for (int i = 0; i < kStreams; ++i) {
    bool closed = false;
    raw[i] += streams[i]->ReadToEnd(seconds(60), &closed);
    EXPECT_TRUE(closed);
    const testing::Streamed got = testing::ParseStream(raw[i]);
    EXPECT_TRUE(got.finished) << "stream " << i << ": " << got.error;
    EXPECT_EQ(got.ids.size(), static_cast<size_t>(kMaxTokens)) << "stream " << i;
  }
  const int status = (*serve)->Wait(seconds(30));
  ASSERT_NE(status, -1) << "serve still running after its streams ended:\n" << (*serve)->Log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n"
                                                             << (*serve)->Log();
}

}  // namespace
}  // namespace strata

// The HTTP gateway against real clients: the official `openai` npm package (tests/node/
// openai_client.mjs) drives a gateway in front of an engine and a real worker process, and
// plain HTTP checks /health, /ready, /metrics and authentication of the operations endpoints.
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "boost/json.hpp"
#include "common/process_stats.h"
#include "gtest/gtest.h"
#include "tests/coordinator/gateway/gateway_fixture.h"
#include "tests/testing/http_client.h"
#include "tests/testing/node_reference.h"
#include "tests/testing/probes.h"
#include "tests/testing/shared_data.h"

namespace strata::gateway {
namespace {

using testing::HttpGet;
using testing::HttpPost;
using Response = testing::HttpResponse;

// Runs a tests/node client script against the gateway; every check it reports must pass.
void ExpectClientChecksPass(int port, const std::string& script, size_t min_checks) {
  boost::json::object request{{"base_url", "http://127.0.0.1:" + std::to_string(port)},
                              {"model", "tiny"},
                              {"api_key", "test-key"}};
  auto out = testing::RunNodeReference(script, boost::json::serialize(request));
  ASSERT_TRUE(out.ok()) << out.status();
  boost::system::error_code ec;
  const boost::json::value results = boost::json::parse(*out, ec);
  ASSERT_FALSE(ec) << *out;
  ASSERT_GE(results.as_array().size(), min_checks);
  for (const auto& r : results.as_array()) {
    const auto& o = r.as_object();
    EXPECT_TRUE(o.at("ok").as_bool()) << o.at("name").as_string().c_str() << ": "
                                      << o.at("detail").as_string().c_str();
    std::printf("%s: %s %s\n", o.at("name").as_string().c_str(),
                o.at("ok").as_bool() ? "ok" : "FAILED", o.at("detail").as_string().c_str());
  }
}

TEST_F(GatewayTest, OfficialOllamaClient) {
  STRATA_NODE_REFERENCES_OR_SKIP();
  ExpectClientChecksPass(gateway_->port(), "ollama_client.mjs", 11);
}

TEST_F(GatewayTest, OfficialOpenAiClient) {
  STRATA_NODE_REFERENCES_OR_SKIP();
  ExpectClientChecksPass(gateway_->port(), "openai_client.mjs", 18);
  // The client that went away mid-stream: its request is cancelled and its blocks come back.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  engine::EngineStats stats = engine_->stats();
  while ((stats.running > 0 || stats.kv_blocks_free != stats.kv_blocks) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    stats = engine_->stats();
  }
  EXPECT_EQ(stats.running, 0);
  EXPECT_EQ(stats.kv_blocks_free, stats.kv_blocks);
}

TEST_F(GatewayTest, OperationsEndpoints) {
  const int port = gateway_->port();
  EXPECT_EQ(HttpGet(port, "/health").status, 200);
  const Response ready = HttpGet(port, "/ready");
  EXPECT_EQ(ready.status, 200) << ready.body;
  // The API needs a key; the operations endpoints do not (by default).
  EXPECT_EQ(HttpGet(port, "/v1/models").status, 401);
  EXPECT_EQ(HttpGet(port, "/v1/models", "wrong").status, 401);
  EXPECT_EQ(HttpGet(port, "/v1/models", "other-key").status, 200);
  const Response metrics = HttpGet(port, "/metrics");
  ASSERT_EQ(metrics.status, 200);
  for (const char* name :
       {"strata_http_requests_total{endpoint=\"/v1/models\",status=\"401\"} 2",
        "strata_time_to_first_token_seconds_bucket", "strata_num_requests_running 0",
        "strata_kv_cache_usage_ratio", "strata_prefix_cache_queries_total",
        "vllm:num_requests_waiting{model_name=\"tiny\"} 0", "vllm:kv_cache_usage_perc",
        "vllm:e2e_request_latency_seconds_count", "vllm:generation_tokens_total",
        "strata_worker_up{rank=\"0\",worker=\"127.0.0.1:", "strata_worker_steps_total{rank=\"0\"}",
        "strata_request_queue_time_seconds_count", "strata_preemptions_total 0",
        "strata_ready 1", "strata_engine_steps_total", "strata_engine_step_seconds_total",
        "strata_sequence_faults_total 0", "strata_cluster_failures_total 0",
        "strata_replica_handoffs_total 0"}) {
    EXPECT_NE(metrics.body.find(name), std::string::npos) << name << "\n" << metrics.body;
  }
  // The process figures are this (test) process's, as /proc and malloc report them.
  const ProcessStats self = ReadProcessStats();
  const double resident = testing::MetricValue(metrics.body, "process_resident_memory_bytes");
  EXPECT_GT(resident, 0.5 * static_cast<double>(self.resident_bytes)) << metrics.body;
  EXPECT_LT(resident, 2.0 * static_cast<double>(self.resident_bytes)) << metrics.body;
  EXPECT_GT(testing::MetricValue(metrics.body, "process_open_fds"), 3);
  EXPECT_EQ(testing::MetricValue(metrics.body, "process_max_fds"),
            static_cast<double>(self.max_fds));
  EXPECT_NEAR(testing::MetricValue(metrics.body, "process_start_time_seconds"),
              self.start_time_seconds, 1.0);
  EXPECT_GT(testing::MetricValue(metrics.body, "process_cpu_seconds_total"), 0);
  EXPECT_GT(testing::MetricValue(metrics.body, "strata_heap_allocated_bytes"), 64 << 10);
  EXPECT_GE(testing::MetricValue(metrics.body, "strata_heap_free_bytes"), 0);
}

// Per-key limits: a key over its requests per minute gets 429 with Retry-After and OpenAI's
// rate_limit_exceeded; another key is not affected; tokens are charged as used.
TEST_F(GatewayTest, PerKeyLimitsAre429WithRetryAfter) {
  GatewayOptions options;
  options.http.host = "127.0.0.1";
  options.http.port = 0;
  options.model_name = "tiny";
  options.api_keys = {"key-a", "key-b"};
  options.rate_limits.requests_per_minute = 2;
  auto limited = Gateway::Start(*router_, *tokenizer_, &templates_, options);
  ASSERT_TRUE(limited.ok()) << limited.status();
  const int port = (*limited)->port();
  const std::string body = R"({"model": "tiny", "prompt": "Hi", "max_tokens": 2})";
  EXPECT_EQ(HttpPost(port, "/v1/completions", body, "key-a").status, 200);
  EXPECT_EQ(HttpPost(port, "/v1/completions", body, "key-a").status, 200);
  const Response refused = HttpPost(port, "/v1/completions", body, "key-a");
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_EQ(refused.retry_after, "30");
  EXPECT_NE(refused.body.find("rate_limit_exceeded"), std::string::npos) << refused.body;
  EXPECT_NE(refused.body.find("requests per minute (limit 2"), std::string::npos) << refused.body;
  EXPECT_EQ(HttpPost(port, "/v1/completions", body, "key-b").status, 200);
  EXPECT_EQ(HttpGet(port, "/health").status, 200) << "operations endpoints are not limited";
  const std::string metrics = HttpGet(port, "/metrics").body;
  EXPECT_NE(metrics.find(R"(strata_http_requests_total{endpoint="/v1/completions",status="429"} 1)"),
            std::string::npos) << metrics;
  (*limited)->Stop();

  // Tokens: a key whose requests used more than its minute's tokens waits.
  options.rate_limits = {};
  options.rate_limits.tokens_per_minute = 3;
  auto tokens = Gateway::Start(*router_, *tokenizer_, &templates_, options);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(HttpPost((*tokens)->port(), "/v1/completions", body, "key-a").status, 200);
  const Response debt = HttpPost((*tokens)->port(), "/v1/completions", body, "key-a");
  EXPECT_EQ(debt.status, 429) << debt.body;
  EXPECT_NE(debt.body.find("tokens per minute (limit 3"), std::string::npos) << debt.body;
  EXPECT_FALSE(debt.retry_after.empty());
  EXPECT_EQ(HttpPost((*tokens)->port(), "/v1/completions", body, "key-b").status, 200);
  (*tokens)->Stop();
}

// A gateway whose engine queue counts as full answers 503 with Retry-After, in OpenAI's shape.
TEST_F(GatewayTest, OverloadIs503WithRetryAfter) {
  GatewayOptions options;
  options.http.host = "127.0.0.1";
  options.http.port = 0;
  options.model_name = "tiny";
  options.max_waiting = 0;
  auto full = Gateway::Start(*router_, *tokenizer_, &templates_, options);
  ASSERT_TRUE(full.ok()) << full.status();
  const Response r = HttpPost((*full)->port(), "/v1/completions",
                              R"({"model": "tiny", "prompt": "Hi", "max_tokens": 2})");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.retry_after, "1");
  EXPECT_NE(r.body.find("service_unavailable_error"), std::string::npos) << r.body;
  (*full)->Stop();
}

// Stop() lets a stream in progress finish (within the grace period) before closing.
TEST_F(GatewayTest, StopLetsRequestsInProgressFinish) {
  const int port = gateway_->port();
  Response streamed;
  std::thread client([&] {
    streamed = HttpPost(port, "/v1/completions",
                        R"({"model": "tiny", "prompt": "Hi", "max_tokens": 300, "stream": true,
                            "ignore_eos": true})",
                        "test-key");
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (engine_->stats().running == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_GT(engine_->stats().running, 0);
  gateway_->Stop();
  client.join();
  EXPECT_EQ(streamed.status, 200);
  EXPECT_NE(streamed.body.find("data: [DONE]"), std::string::npos) << streamed.body.size();
}

TEST(ApiKeysTest, FromFileAndEnvironment) {
  const auto dir = testing::TempDir("api_keys");
  const std::string file = (dir / "keys.txt").string();
  {
    std::ofstream out(file);
    out << "# team keys\nalpha\n\n  beta  \n";
  }
  auto keys = LoadApiKeys(file, "gamma, delta");
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(*keys, (std::vector<std::string>{"alpha", "beta", "gamma", "delta"}));
  EXPECT_EQ(LoadApiKeys("/nonexistent/keys", "").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(LoadApiKeys("", "")->empty());
}

}  // namespace
}  // namespace strata::gateway

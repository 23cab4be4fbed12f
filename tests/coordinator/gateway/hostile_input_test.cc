// The gateway under the adversarial probe's findings (issue 13): each defect it found, as the
// request that showed it and the answer it must now get.
#include <chrono>
#include <string>
#include <thread>

#include "boost/json.hpp"
#include "gtest/gtest.h"
#include "tests/coordinator/gateway/gateway_fixture.h"
#include "tests/testing/http_client.h"

namespace strata::gateway {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::HttpGet;
using testing::HttpPost;
using testing::RawConnection;
using Response = testing::HttpResponse;

std::string Metrics(int port) { return HttpGet(port, "/metrics").body; }

// A raw request with the test key.
std::string Post(const std::string& path, const std::string& body, const char* version = "1.1") {
  return "POST " + path + " HTTP/" + version + "\r\nHost: x\r\nAuthorization: Bearer test-key\r\n"
         "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

// (a) Unauthenticated requests to ever new paths must not grow /metrics (nor put bytes that are
// not UTF-8 into it).
TEST_F(GatewayTest, PathsNoRouteServesShareOneMetricLabel) {
  const int port = gateway_->port();
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(HttpGet(port, "/probe/" + std::to_string(i) + std::string(500, 'x')).status, 401);
  }
  RawConnection raw(port);
  raw.Send("GET /\xff\xfe/%00 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(raw.ReadUntil("}", seconds(10)).starts_with("HTTP/1.1 401"));
  EXPECT_EQ(HttpGet(port, "/probe/with-key", "test-key").status, 404);
  const std::string metrics = Metrics(port);
  EXPECT_NE(metrics.find("strata_http_requests_total{endpoint=\"other\",status=\"401\"} 41"),
            std::string::npos) << metrics;
  EXPECT_NE(metrics.find("strata_http_requests_total{endpoint=\"other\",status=\"404\"} 1"),
            std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("/probe"), std::string::npos);
  for (unsigned char c : metrics) ASSERT_LT(c, 0x80) << "/metrics holds a byte that is not ASCII";
}

// (d) Each request is counted under the status it was answered with.
TEST_F(GatewayTest, RequestsAreCountedUnderTheStatusTheyGot) {
  const int port = gateway_->port();
  EXPECT_EQ(HttpPost(port, "/v1/completions", R"({"model": "tiny", "prompt": "Hi", "temperature": 9})", "test-key")
                .status, 400);
  EXPECT_EQ(HttpGet(port, "/v1/models/nope", "test-key").status, 404);
  EXPECT_EQ(HttpPost(port, "/api/generate", R"({"model": "nope", "prompt": "Hi"})", "test-key")
                .status, 404);
  const std::string metrics = Metrics(port);
  for (const char* line : {"{endpoint=\"/v1/completions\",status=\"400\"} 1",
                           "{endpoint=\"/v1/models/{id}\",status=\"404\"} 1",
                           "{endpoint=\"/api/generate\",status=\"404\"} 1"}) {
    EXPECT_NE(metrics.find(line), std::string::npos) << line << "\n" << metrics;
  }
  EXPECT_EQ(metrics.find("status=\"200\"} 3"), std::string::npos) << metrics;
}

// (c) Integers are range-checked, never truncated or wrapped; each gets a 400 naming it.
TEST_F(GatewayTest, IntegersOutOfRangeAreRefusedNotTruncated) {
  const int port = gateway_->port();
  struct Case {
    const char* body;
    const char* named;
  };
  for (const Case& c : {
           Case{R"({"model": "tiny", "prompt": [4294967699], "max_tokens": 1})", "4294967699"},
           Case{R"({"model": "tiny", "prompt": [2147483648], "max_tokens": 1})", "2147483648"},
           Case{R"({"model": "tiny", "prompt": [-1], "max_tokens": 1})", "-1"},
           Case{R"({"model": "tiny", "prompt": [18446744073709551615], "max_tokens": 1})", "18446744073709551615"},
           Case{R"({"model": "tiny", "prompt": [[1, 99999999999999999999]], "max_tokens": 1})", "prompt"},
           Case{R"({"model": "tiny", "prompt": "Hi", "top_k": 18446744073709551615})", "18446744073709551615"},
           Case{R"({"model": "tiny", "prompt": "Hi", "n": 4294967297})", "4294967297"},
           Case{R"({"model": "tiny", "prompt": "Hi", "max_tokens": 9223372036854775808})", "9223372036854775808"},
           Case{R"({"model": "tiny", "prompt": "Hi", "logprobs": 18446744073709551615})", "logprobs"},
       }) {
    const Response r = HttpPost(port, "/v1/completions", c.body, "test-key");
    EXPECT_EQ(r.status, 400) << c.body << " -> " << r.body;
    EXPECT_NE(r.body.find(c.named), std::string::npos) << c.body << " -> " << r.body;
  }
  const Response detok = HttpPost(port, "/detokenize", R"({"model": "tiny", "tokens": [4294967699]})", "test-key");
  EXPECT_EQ(detok.status, 400) << detok.body;
  // In range, a token id the vocabulary lacks is the engine's refusal, also a 400.
  const Response big = HttpPost(port, "/v1/completions", R"({"model": "tiny", "prompt": [2147483647]})", "test-key");
  EXPECT_EQ(big.status, 400) << big.body;
}

// (g) Ollama options of the wrong type are refused, as Ollama refuses them.
TEST_F(GatewayTest, OllamaOptionsOfTheWrongTypeAreRefused) {
  const int port = gateway_->port();
  for (const char* options : {R"({"num_predict": "5"})", R"({"temperature": "hot"})",
                              R"({"top_k": 2.5})", R"({"use_mmap": 1})"}) {
    const std::string body = std::string(R"({"model": "tiny", "prompt": "Hi", "stream": false, )") +
                             R"("options": )" + options + "}";
    const Response r = HttpPost(port, "/api/generate", body, "test-key");
    EXPECT_EQ(r.status, 400) << options << " -> " << r.body;
    EXPECT_NE(r.body.find("options."), std::string::npos) << r.body;
  }
  const Response ok = HttpPost(
      port, "/api/generate",
      R"({"model": "tiny", "prompt": "Hi", "stream": false, "options": {"num_predict": 5, "seed": 18446744073709551615, "top_k": 99999999999}})",
      "test-key");
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_LE(json::parse(ok.body).at("eval_count").to_number<int64_t>(), 5);
}

// (h) A prompt longer than the context could hold in any tokenization is refused at once.
TEST_F(GatewayTest, APromptTooLongForAnyTokenizationIsRefusedBeforeEncoding) {
  const int port = gateway_->port();
  const size_t per_token = tokenizer_->max_bytes_per_token();
  ASSERT_GT(per_token, 0u);
  const size_t limit = per_token * static_cast<size_t>(engine_->max_model_len());
  const std::string text(limit + 1, 'a');
  const json::object completion{{"model", "tiny"}, {"prompt", text}, {"max_tokens", 1}};
  Response r = HttpPost(port, "/v1/completions", json::serialize(completion), "test-key");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("context_length_exceeded"), std::string::npos) << r.body.substr(0, 300);
  EXPECT_NE(r.body.find(std::to_string(limit + 1) + " bytes"), std::string::npos)
      << r.body.substr(0, 300);
  const json::object chat{{"model", "tiny"}, {"messages", json::array{json::object{{"role", "user"}, {"content", text}}}}};
  r = HttpPost(port, "/v1/chat/completions", json::serialize(chat), "test-key");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("context_length_exceeded"), std::string::npos) << r.body.substr(0, 300);
  const json::object ollama{{"model", "tiny"}, {"prompt", text}, {"stream", false}};
  EXPECT_EQ(HttpPost(port, "/api/generate", json::serialize(ollama), "test-key").status, 400);
  // vLLM's /tokenize refuses what no context holds too (it encoded 8 MiB before).
  const json::object tokenize{{"model", "tiny"}, {"prompt", text}};
  r = HttpPost(port, "/tokenize", json::serialize(tokenize), "test-key");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("maximum context length"), std::string::npos) << r.body.substr(0, 300);
  const json::object tokenize_chat{{"model", "tiny"}, {"messages", chat.at("messages")}};
  EXPECT_EQ(HttpPost(port, "/tokenize", json::serialize(tokenize_chat), "test-key").status, 400);
  const json::object fits{{"model", "tiny"}, {"prompt", "Hello"}};
  EXPECT_EQ(HttpPost(port, "/tokenize", json::serialize(fits), "test-key").status, 200);
}

// (b) A client that leaves a non-streaming request stops its work (OpenAI and Ollama).
TEST_F(GatewayTest, AnAbandonedNonStreamingRequestIsCancelled) {
  const int port = gateway_->port();
  const int64_t max_tokens = 1900;
  for (const std::string& request :
       {Post("/v1/completions", R"({"model": "tiny", "prompt": "Hi", "n": 4, "ignore_eos": true, "max_tokens": 1900})"),
        Post("/api/generate", R"({"model": "tiny", "prompt": "Hi", "stream": false, "options": {"num_predict": 1900}})")}) {
    const int64_t steps_before = engine_->stats().steps;
    RawConnection c(port);
    c.Send(request);
    const auto deadline = std::chrono::steady_clock::now() + seconds(10);
    while (engine_->stats().running == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(1));
    }
    ASSERT_GT(engine_->stats().running, 0);
    c.Close();
    engine::EngineStats stats = engine_->stats();
    while ((stats.running > 0 || stats.kv_blocks_free != stats.kv_blocks) &&
           std::chrono::steady_clock::now() < deadline + seconds(10)) {
      std::this_thread::sleep_for(milliseconds(5));
      stats = engine_->stats();
    }
    EXPECT_EQ(stats.running, 0);
    EXPECT_EQ(stats.kv_blocks_free, stats.kv_blocks);
    // Finishing would take max_tokens steps; the cancelled request took a fraction of them.
    EXPECT_LT(stats.steps - steps_before, max_tokens / 2) << request;
  }
}

// (e) The key is checked on the header: an unauthenticated 8 MB upload is refused before it.
TEST_F(GatewayTest, AnUnauthenticatedUploadIsRefusedBeforeItsBody) {
  RawConnection c(gateway_->port());
  c.Send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 8000000\r\n\r\n{\"prompt\":");
  bool closed = false;
  const std::string answer = c.ReadToEnd(seconds(20), &closed);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 401")) << answer;
  EXPECT_NE(answer.find("invalid_api_key"), std::string::npos) << answer;
  EXPECT_TRUE(closed);
}

// (f) An HTTP/1.0 client gets its stream without chunked encoding, ended by the close.
TEST_F(GatewayTest, AnHttp10ClientGetsAPlainStream) {
  RawConnection c(gateway_->port());
  c.Send(Post("/v1/completions", R"({"model": "tiny", "prompt": "Hi", "max_tokens": 4, "stream": true})", "1.0"));
  bool closed = false;
  const std::string answer = c.ReadToEnd(seconds(30), &closed);
  EXPECT_TRUE(closed);
  EXPECT_TRUE(answer.starts_with("HTTP/1.0 200")) << answer;
  EXPECT_EQ(answer.find("chunked"), std::string::npos) << answer;
  EXPECT_TRUE(answer.ends_with("data: [DONE]\n\n")) << answer;
}

}  // namespace
}  // namespace strata::gateway

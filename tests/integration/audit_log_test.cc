// --audit-log: one line per API request naming who (a hash of the key, never the key), what
// (route, model), the outcome (status) and the cost (token counts, seconds), and never the
// text of a prompt or a completion.
#include <string>

#include "boost/json.hpp"
#include "gtest/gtest.h"
#include "tests/testing/http_client.h"
#include "tests/testing/serve_process.h"

namespace strata {
namespace {

namespace json = boost::json;

TEST(AuditLogTest, OneLinePerRequestWithAKeyHashAndNoText) {
  auto serve = testing::ServeProcess::Start(
      {"--served-model-name", "m", "--api-keys", "audit-test-key", "--audit-log"});
  ASSERT_TRUE(serve.ok()) << serve.status();
  const int port = (*serve)->port();
  const std::string secret_text = "the quarterly figures nobody may read";
  const json::object body{{"model", "m"},
                          {"messages", json::array{json::object{{"role", "user"},
                                                                {"content", secret_text}}}},
                          {"max_tokens", 5},
                          {"temperature", 0}};
  const testing::HttpResponse ok =
      testing::HttpPost(port, "/v1/chat/completions", json::serialize(body), "audit-test-key");
  ASSERT_EQ(ok.status, 200) << ok.body;
  const json::object usage = json::parse(ok.body).at("usage").as_object();
  const int64_t prompt_tokens = usage.at("prompt_tokens").as_int64();
  const int64_t completion_tokens = usage.at("completion_tokens").as_int64();
  EXPECT_EQ(testing::HttpPost(port, "/v1/chat/completions", json::serialize(body), "wrong-key")
                .status,
            401);
  EXPECT_EQ(testing::HttpPost(port, "/v1/completions", "{\"model\": ", "audit-test-key").status,
            400);
  (*serve)->Stop();

  const std::string log = (*serve)->Log();
  // The key ids are the first 12 hex digits of `printf %s KEY | sha256sum`.
  EXPECT_NE(log.find("audit key=fbf64f02565f route=/v1/chat/completions model=m status=200 "
                     "prompt_tokens=" + std::to_string(prompt_tokens) +
                     " completion_tokens=" + std::to_string(completion_tokens) + " seconds="),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("audit key=5e179de47cd1 route=/v1/chat/completions model=m status=401"),
            std::string::npos) << log;
  EXPECT_NE(log.find("audit key=fbf64f02565f route=/v1/completions model=m status=400 "
                     "prompt_tokens=0 completion_tokens=0"),
            std::string::npos) << log;
  EXPECT_EQ(log.find("audit-test-key"), std::string::npos) << "the key was logged";
  EXPECT_EQ(log.find("wrong-key"), std::string::npos) << "a key was logged";
  EXPECT_EQ(log.find(secret_text), std::string::npos) << "prompt text was logged";
}

}  // namespace
}  // namespace strata

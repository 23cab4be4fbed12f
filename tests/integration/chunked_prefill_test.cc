// Regression: a fresh `strata serve` whose first request is longer than the step budget
// (--max-num-batched-tokens) prefills it in chunks whose steps sample nothing. The worker
// used to dereference logits scratch it had never sized and crash, taking the service down.
// Chunked prefill through the server must give exactly the greedy ids of one unchunked
// forward pass of the same prompt.
#include <string>
#include <vector>

#include "boost/json.hpp"
#include "gtest/gtest.h"
#include "tests/testing/http_client.h"
#include "tests/testing/serve_process.h"
#include "tests/testing/shared_data.h"
#include "coordinator/engine/batch_generate.h"
#include "worker/runtime/local_executor.h"

namespace strata {
namespace {

namespace json = boost::json;

constexpr int kMaxTokens = 8;

// BOS, then ids drawn deterministically from the fixture's 512-token vocabulary (past the
// specials 0-2).
std::vector<int32_t> LongPrompt(int length) {
  std::vector<int32_t> ids = {1};
  uint32_t x = 12345;
  while (static_cast<int>(ids.size()) < length) {
    x = x * 1664525u + 1013904223u;
    ids.push_back(3 + static_cast<int32_t>((x >> 8) % 509));
  }
  return ids;
}

// Greedy ids of one process that prefills the whole prompt in a single step (the in-process
// executor with a step budget above the prompt's length).
std::vector<int32_t> Unchunked(const std::string& model, const std::vector<int32_t>& prompt) {
  LocalExecutorOptions options;
  options.model = model;
  options.backend.threads = 2;
  options.kv_tokens = static_cast<int64_t>(prompt.size()) + kMaxTokens;
  options.max_step_tokens = 4096;
  auto executor = LocalExecutor::Create(options);
  EXPECT_TRUE(executor.ok()) << executor.status();
  if (!executor.ok()) return {};
  engine::BatchGenerateOptions generate;
  generate.max_new_tokens = kMaxTokens;
  generate.stop_at_eos = false;
  generate.sampling.temperature = 0.0f;
  generate.engine.scheduler.max_batched_tokens = 4096;
  auto result = engine::GenerateBatch(**executor, {prompt}, generate);
  EXPECT_TRUE(result.ok()) << result.status();
  if (!result.ok()) return {};
  EXPECT_EQ(result->steps.front().tokens, static_cast<int64_t>(prompt.size()));  // one chunk
  return result->sequences[0].tokens;
}

// Greedy ids of the same prompt as the first request of a fresh `strata serve`.
std::vector<int32_t> ThroughServe(const std::string& model, const std::vector<int32_t>& prompt,
                                  const std::vector<std::string>& flags) {
  std::vector<std::string> args = {"--model", model, "--threads", "1"};
  args.insert(args.end(), flags.begin(), flags.end());
  auto serve = testing::ServeProcess::Start(args);
  EXPECT_TRUE(serve.ok()) << serve.status();
  if (!serve.ok()) return {};
  json::array ids;
  for (int32_t id : prompt) ids.push_back(id);
  const json::object request{{"model", "hf"},         {"prompt", ids},
                             {"max_tokens", kMaxTokens}, {"temperature", 0},
                             {"ignore_eos", true},     {"return_token_ids", true}};
  const testing::HttpResponse response =
      testing::HttpPost((*serve)->port(), "/v1/completions", json::serialize(request));
  EXPECT_EQ(response.status, 200) << response.body << "\n" << (*serve)->Log();
  // The service must still be up afterwards.
  EXPECT_EQ(testing::HttpGet((*serve)->port(), "/ready").status, 200) << (*serve)->Log();
  if (response.status != 200) return {};
  const json::value body = json::parse(response.body);
  std::vector<int32_t> out;
  for (const json::value& id : body.at("choices").at(0).at("token_ids").as_array()) {
    out.push_back(static_cast<int32_t>(id.to_number<int64_t>()));
  }
  EXPECT_EQ(body.at("usage").at("prompt_tokens").to_number<int64_t>(),
            static_cast<int64_t>(prompt.size()));
  return out;
}

TEST(ChunkedPrefillTest, LongFirstRequestMatchesTheUnchunkedRun) {
  STRATA_SHARED_DATA_OR_SKIP(model, "fixtures/llama/hf");  // context 131072
  const std::vector<int32_t> prompt = LongPrompt(2100);
  const std::vector<int32_t> expected = Unchunked(model.string(), prompt);
  ASSERT_EQ(expected.size(), static_cast<size_t>(kMaxTokens));
  // The default budget of 2048 tokens (two chunks), and 512 (five chunks).
  EXPECT_EQ(ThroughServe(model.string(), prompt, {}), expected);
  EXPECT_EQ(ThroughServe(model.string(), prompt, {"--max-num-batched-tokens", "512"}), expected);
}

}  // namespace
}  // namespace strata

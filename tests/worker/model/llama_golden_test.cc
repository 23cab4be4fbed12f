// The Llama forward pass against independent implementations:
//  * stories260K (a real trained model): greedy continuations of llama2.c / llama.cpp / an fp32
//    reference, exactly, from the Hugging Face directory and from the GGUF file;
//  * fixtures/llama (GQA 8/2, llama3 rope scaling) and fixtures/mistral (GQA 8/4, 3 layers):
//    llama.cpp's logits for every prompt position and every greedy step within 1e-3, and its
//    greedy ids exactly, from both formats.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <string>

#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"
#include "tests/worker/model/golden.h"
#include "worker/model/generate.h"
#include "worker/model/model_runner.h"

namespace strata {
namespace {

using testing::LoadFixtureGolden;
using testing::ParseJsonFile;
using testing::ToIds;

std::unique_ptr<ModelRunner> Load(const std::string& path, Backend& backend) {
  ModelLoadOptions options;
  options.kv_blocks = 64;
  auto model = LoadModel(path, backend, options);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

float MaxAbsDiff(absl::Span<const float> a, absl::Span<const float> b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

class Stories260KTest : public ::testing::TestWithParam<std::string> {};

TEST_P(Stories260KTest, GreedyMatchesGolden) {
  STRATA_SHARED_DATA_OR_SKIP(model_path, GetParam());
  STRATA_SHARED_DATA_OR_SKIP(golden_path, "golden/stories260K.jsonl");
  std::unique_ptr<Backend> backend = MakeCpuBackend(2);
  std::unique_ptr<ModelRunner> model = Load(model_path.string(), *backend);
  ASSERT_NE(model, nullptr);

  std::ifstream in(golden_path);
  std::string line;
  int records = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const boost::json::value rec = boost::json::parse(line);
    const std::vector<int32_t> prompt = ToIds(rec.at("prompt_ids"));
    const std::vector<int32_t> expected = ToIds(rec.at("greedy_ids"));
    GenerateOptions options;
    options.max_new_tokens = static_cast<int64_t>(expected.size());
    options.sampling.temperature = 0.0f;
    options.stop_at_eos = false;  // the golden decoding ignores EOS/BOS
    auto result = Generate(*model, prompt, options);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->tokens, expected) << "prompt: " << rec.at("prompt").as_string();
    ++records;
  }
  EXPECT_EQ(records, 5);
}

INSTANTIATE_TEST_SUITE_P(Formats, Stories260KTest,
                         ::testing::Values("models/stories260K/hf", "models/stories260K/stories260K.gguf"),
                         [](const auto& p) {
                           return p.param.ends_with(".gguf") ? std::string("Gguf") : std::string("HuggingFace");
                         });

// A fixture family and one of its two formats: "<family>/hf" or "<family>/model.gguf".
class LlamaFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaFixtureTest, LogitsAndGreedyMatchLlamaCpp) {
  const std::string family = GetParam().substr(0, GetParam().find('/'));
  STRATA_SHARED_DATA_OR_SKIP(model_path, "fixtures/" + GetParam());
  STRATA_SHARED_DATA_OR_SKIP(golden_path, "fixtures/" + family + "/golden.json");
  std::unique_ptr<Backend> backend = MakeCpuBackend(2);
  std::unique_ptr<ModelRunner> model = Load(model_path.string(), *backend);
  ASSERT_NE(model, nullptr);
  const int64_t vocab = model->config().vocab_size;
  const int32_t block_size = static_cast<int32_t>(model->kv_block_size());
  std::vector<int32_t> blocks(model->kv_blocks());
  std::iota(blocks.begin(), blocks.end(), 0);

  for (const testing::FixtureCase& c : LoadFixtureGolden(golden_path)) {
    // The prompt as one batch, logits at every position.
    StepBatch prefill;
    prefill.AddSequence(c.tokens, 0, blocks, block_size, /*all_logits=*/true);
    std::vector<float> logits;
    ASSERT_TRUE(model->Forward(prefill, {}, logits).ok());
    ASSERT_EQ(logits.size(), c.tokens.size() * vocab);
    for (size_t p = 0; p < c.tokens.size(); ++p) {
      EXPECT_LT(MaxAbsDiff(absl::MakeSpan(logits).subspan(p * vocab, vocab), c.logits_all[p]), 1e-3)
          << "position " << p;
    }
    // Greedy steps, one token at a time.
    int32_t cached = static_cast<int32_t>(c.tokens.size());
    std::vector<float> step_logits(logits.end() - vocab, logits.end());
    for (size_t i = 0; i < c.greedy.size(); ++i) {
      EXPECT_LT(MaxAbsDiff(step_logits, c.greedy_step_logits[i]), 1e-3) << "step " << i;
      const int32_t token = Argmax(step_logits);
      ASSERT_EQ(token, c.greedy[i]) << "step " << i;
      StepBatch decode;
      decode.AddSequence({token}, cached++, blocks, block_size, false);
      ASSERT_TRUE(model->Forward(decode, {}, step_logits).ok());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, LlamaFixtureTest,
                         ::testing::Values("llama/hf", "llama/model.gguf", "mistral/hf",
                                           "mistral/model.gguf"),
                         [](const auto& p) {
                           const std::string family = p.param.substr(0, p.param.find('/'));
                           return family + (p.param.ends_with(".gguf") ? "Gguf" : "HuggingFace");
                         });

TEST(LlamaLoadTest, LayerRangeOutsideModelIsRefused) {
  STRATA_SHARED_DATA_OR_SKIP(model_path, "fixtures/llama/model.gguf");
  std::unique_ptr<Backend> backend = MakeCpuBackend(1);
  ModelLoadOptions options;
  options.layer_begin = 0;
  options.layer_end = 9;
  auto model = LoadModel(model_path.string(), *backend, options);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("2 layers"), std::string::npos) << model.status();
}

TEST(LlamaLoadTest, BadStepIsRejectedNotCrashed) {
  STRATA_SHARED_DATA_OR_SKIP(model_path, "fixtures/llama/model.gguf");
  std::unique_ptr<Backend> backend = MakeCpuBackend(1);
  std::unique_ptr<ModelRunner> model = Load(model_path.string(), *backend);
  ASSERT_NE(model, nullptr);
  std::vector<float> out;
  StepBatch bad_token;
  bad_token.AddSequence({100000}, 0, {0}, 16, false);
  EXPECT_EQ(model->Forward(bad_token, {}, out).code(), absl::StatusCode::kInvalidArgument);
  StepBatch bad_block;
  bad_block.AddSequence({1, 2}, 0, {9999}, 16, false);
  EXPECT_EQ(model->Forward(bad_block, {}, out).code(), absl::StatusCode::kInvalidArgument);
  StepBatch missing_block;
  missing_block.AddSequence(std::vector<int32_t>(20, 1), 0, {0}, 16, false);
  EXPECT_EQ(model->Forward(missing_block, {}, out).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata

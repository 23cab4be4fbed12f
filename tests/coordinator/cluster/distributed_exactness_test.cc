// The distributed runtime end to end: a coordinator and TP x PP real `strata worker`
// processes on 127.0.0.1 must produce, for every split the model allows (TP in {1, 2, 4},
// PP in {1, 2, 3}), the same greedy tokens as one process running the whole model, and
// logits within 1e-4 (f32). Several prompts of different lengths run together, dealt into
// one micro-batch per pipeline stage, so the stages overlap and sequences share steps.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/engine/batch_generate.h"
#include "gtest/gtest.h"
#include "tests/coordinator/cluster/local_cluster.h"
#include "tests/testing/shared_data.h"
#include "worker/model/synthetic_model.h"
#include "worker/model/tp_split.h"
#include "worker/runtime/local_executor.h"

namespace strata {
namespace {

constexpr int64_t kNewTokens = 8;
constexpr float kLogitTolerance = 1e-4f;
engine::BatchGenerateOptions Greedy() {
  engine::BatchGenerateOptions generate;
  generate.max_new_tokens = kNewTokens;
  generate.sampling.temperature = 0;
  generate.stop_at_eos = false;
  generate.return_logits = true;
  return generate;
}

const std::vector<std::vector<int32_t>> kPrompts = {
    {1, 403, 407, 261, 378, 300, 290},
    {1, 300},
    {1, 290, 291, 292, 293, 294, 295, 296, 297, 298, 299, 300, 301, 302, 303, 304, 305, 306, 307},
};

// One process, one sequence at a time (the engine on an in-process executor): the reference
// tokens and logits.
std::vector<engine::BatchSequenceOutput> Reference(const std::string& path, ModelConfig& config) {
  LocalExecutorOptions local;
  local.model = path;
  local.backend.threads = 1;
  local.kv_tokens = 128;
  auto executor = LocalExecutor::Create(local);
  EXPECT_TRUE(executor.ok()) << executor.status();
  if (!executor.ok()) return {};
  config = (*executor)->config();
  std::vector<engine::BatchSequenceOutput> out;
  for (const auto& prompt : kPrompts) {
    auto result = engine::GenerateBatch(**executor, {prompt}, Greedy());
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return {};
    out.push_back(result->sequences[0]);
  }
  return out;
}

void ExpectEverySplitMatches(const std::string& path) {
  ModelConfig config;
  const std::vector<engine::BatchSequenceOutput> reference = Reference(path, config);
  ASSERT_EQ(reference.size(), kPrompts.size());
  for (int tp : {1, 2, 4}) {
    if (!MakeTpLayout(config, 0, tp).ok()) continue;
    for (int pp : {1, 2, 3}) {
      if (pp > config.num_layers) continue;
      SCOPED_TRACE(absl::StrCat("TP", tp, " PP", pp));
      ExecutorOptions options;
      options.model = path;
      options.tp = tp;
      options.pp = pp;
      options.max_kv_blocks = 64;
      options.min_kv_tokens = 64;
      options.worker_wait = std::chrono::seconds(30);
      options.step_timeout = std::chrono::seconds(30);
      options.comm_timeout = std::chrono::seconds(20);
      auto cluster = testing::StartLocalCluster(options, tp * pp);
      ASSERT_TRUE(cluster.ok()) << cluster.status();
      auto result = engine::GenerateBatch(*(*cluster)->executor, kPrompts, Greedy());
      ASSERT_TRUE(result.ok()) << result.status();
      float diff = 0;
      for (size_t s = 0; s < kPrompts.size(); ++s) {
        EXPECT_EQ(result->sequences[s].tokens, reference[s].tokens) << "prompt " << s;
        ASSERT_EQ(result->sequences[s].logits.size(), reference[s].logits.size());
        for (size_t t = 0; t < reference[s].logits.size(); ++t) {
          ASSERT_EQ(result->sequences[s].logits[t].size(), reference[s].logits[t].size());
          for (size_t v = 0; v < reference[s].logits[t].size(); ++v) {
            diff = std::max(diff, std::fabs(result->sequences[s].logits[t][v] -
                                            reference[s].logits[t][v]));
          }
        }
      }
      EXPECT_LE(diff, kLogitTolerance);
      std::printf("TP%d PP%d: %zu steps, max logit diff %.3g\n", tp, pp,
                  result->steps.size(), diff);
    }
  }
}

TEST(DistributedExactnessTest, Stories260KEverySplit) {
  STRATA_SHARED_DATA_OR_SKIP(model, "models/stories260K/stories260K.gguf");
  ExpectEverySplitMatches(model.string());
}

// 16 query heads over 2 KV heads (replicated at TP 4), 4 layers, hidden 128.
TEST(DistributedExactnessTest, SyntheticEverySplit) {
  SyntheticModelSpec spec;
  spec.name = "distributed-test";
  spec.hidden_size = 128;
  spec.intermediate_size = 256;
  spec.num_layers = 4;
  spec.num_heads = 16;
  spec.num_kv_heads = 2;  // TP 4 replicates each KV head on two ranks
  const std::string path = (testing::TempDir("distributed_synthetic") / "model.gguf").string();
  ASSERT_TRUE(WriteSyntheticModel(spec, path).ok());
  ExpectEverySplitMatches(path);
}

}  // namespace
}  // namespace strata

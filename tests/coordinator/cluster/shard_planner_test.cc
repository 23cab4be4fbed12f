// The shard planner on real model configs (../shared/data/configs): the splits DESIGN.md and
// the distributed-execution issue call for, and refusals that say what would fit.
#include "coordinator/cluster/shard_planner.h"

#include <filesystem>

#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"

namespace strata {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

ModelConfig Config(const std::string& name) {
  const std::filesystem::path dir = testing::SharedDataPath("configs/" + name);
  if (dir.empty()) return {};
  auto c = LoadHfConfig(dir.string());
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : ModelConfig{};
}

// The plan of configs/<name> (a config.json: sized by its torch_dtype and quantization_config).
absl::StatusOr<ShardPlan> Plan(const std::string& name, const ClusterSpec& cluster,
                               const PlanOptions& options = {}) {
  return PlanModel(testing::SharedDataPath("configs/" + name).string(), cluster, options);
}

ClusterSpec Cluster(int64_t nodes, int64_t devices, int64_t memory_gib) {
  ClusterSpec c;
  c.nodes = nodes;
  c.devices_per_node = devices;
  c.memory_per_device = memory_gib * kGiB;
  return c;
}

// Every layer is on exactly one stage, stages are contiguous and every rank of a stage agrees.
void ExpectWellFormed(const ShardPlan& plan, const ModelConfig& c) {
  ASSERT_EQ(static_cast<int64_t>(plan.ranks.size()), plan.tp * plan.pp);
  int64_t next = 0;
  for (const RankPlan& r : plan.ranks) {
    EXPECT_EQ(r.rank, r.stage * plan.tp + r.tp_rank);
    if (r.tp_rank == 0) {
      EXPECT_EQ(r.layer_begin, next);
      EXPECT_GT(r.layer_end, r.layer_begin);
      next = r.layer_end;
    }
    EXPECT_EQ(r.q_heads * plan.tp, c.num_heads);
    EXPECT_GT(r.kv_blocks, 0);
  }
  EXPECT_EQ(next, c.num_layers);
}

TEST(ShardPlannerTest, Llama405BBf16OnTwoNodesOfEight) {
  STRATA_SHARED_DATA_OR_SKIP(dir, "configs/reconstructed__Llama-3.1-405B-Instruct");
  const ModelConfig c = Config("reconstructed__Llama-3.1-405B-Instruct");
  auto plan = Plan("reconstructed__Llama-3.1-405B-Instruct", Cluster(2, 8, 80), {.min_kv_tokens = 8192});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->tp, 8);
  EXPECT_EQ(plan->pp, 2);
  ExpectWellFormed(*plan, c);
  // ~405B parameters in bf16.
  EXPECT_NEAR(plan->total_weight_bytes / 1e9, 811.0, 10.0);
  // 8 KV heads over TP8: one each, no replication; layers split close to evenly (63 / 63).
  EXPECT_EQ(plan->ranks[0].kv_heads, 1);
  EXPECT_EQ(plan->kv_replication, 1);
  EXPECT_NEAR(plan->ranks[0].layer_end, 63, 1);
  // The first stage carries the embedding slice, the last the lm_head slice: 128256 / 8 rows.
  EXPECT_EQ(plan->ranks[0].vocab_end - plan->ranks[0].vocab_begin, 16032);
  EXPECT_LT(plan->ranks.back().weight_bytes, 72 * kGiB);
  std::printf("%s", plan->Explain(c, Cluster(2, 8, 80)).c_str());
}

TEST(ShardPlannerTest, Llama405BBf16OnOneNodeIsRefusedWithWhatFits) {
  STRATA_SHARED_DATA_OR_SKIP(dir, "configs/reconstructed__Llama-3.1-405B-Instruct");
  auto plan = Plan("reconstructed__Llama-3.1-405B-Instruct", Cluster(1, 8, 80),
                   {.min_kv_tokens = 8192});
  ASSERT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted) << plan.status();
  const std::string message(plan.status().message());
  EXPECT_NE(message.find("fits on 2 nodes x 8 (TP8 x PP2)"), std::string::npos) << message;
  EXPECT_NE(message.find("devices with at least"), std::string::npos) << message;
}

TEST(ShardPlannerTest, Llama405BFp8OnOneNode) {
  STRATA_SHARED_DATA_OR_SKIP(dir, "configs/reconstructed__Llama-3.1-405B-Instruct-FP8");
  const ModelConfig c = Config("reconstructed__Llama-3.1-405B-Instruct-FP8");
  EXPECT_EQ(c.quant.method, QuantMethod::kFp8);
  auto plan = Plan("reconstructed__Llama-3.1-405B-Instruct-FP8", Cluster(1, 8, 80),
                   {.min_kv_tokens = 8192});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->tp, 8);
  EXPECT_EQ(plan->pp, 1);
  ExpectWellFormed(*plan, c);
  EXPECT_NEAR(plan->total_weight_bytes / 1e9, 410.0, 10.0);
}

TEST(ShardPlannerTest, MixtralOnTwoAndFourDevices) {
  STRATA_SHARED_DATA_OR_SKIP(dir, "configs/mistralai__Mixtral-8x7B-Instruct-v0.1");
  const ModelConfig c = Config("mistralai__Mixtral-8x7B-Instruct-v0.1");
  ASSERT_TRUE(c.IsMoe());
  EXPECT_EQ(c.moe.num_experts, 8);
  EXPECT_EQ(c.moe.experts_per_token, 2);
  for (int64_t devices : {2, 4}) {
    auto plan = Plan("mistralai__Mixtral-8x7B-Instruct-v0.1", Cluster(1, devices, 80));
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->tp, devices);
    ExpectWellFormed(*plan, c);
    // 46.7B parameters in bf16, experts counted.
    EXPECT_NEAR(plan->total_weight_bytes / 1e9, 93.4, 1.0);
    EXPECT_NEAR(plan->ranks[0].weight_bytes / 1e9, 93.4 / devices, 1.0);
    // 8 KV heads: 4 per rank on TP2, 2 on TP4.
    EXPECT_EQ(plan->ranks[0].kv_heads, 8 / devices);
  }
  // One 80 GiB device cannot hold 93 GB.
  EXPECT_EQ(Plan("mistralai__Mixtral-8x7B-Instruct-v0.1", Cluster(1, 1, 80)).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(ShardPlannerTest, Llama8BOnOneDevice) {
  STRATA_SHARED_DATA_OR_SKIP(dir, "configs/meta-llama__Llama-3.1-8B-Instruct");
  const ModelConfig c = Config("meta-llama__Llama-3.1-8B-Instruct");
  auto plan = Plan("meta-llama__Llama-3.1-8B-Instruct", Cluster(1, 1, 80));
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWellFormed(*plan, c);
  EXPECT_NEAR(plan->total_weight_bytes / 1e9, 16.06, 0.1);
  // 128 KiB of KV per token (32 layers x 8 heads x 128 x 2 x bf16): ~55 GiB left holds ~450k.
  EXPECT_EQ(plan->ranks[0].kv_bytes_per_token, 32 * 8 * 128 * 2 * 2);
  EXPECT_GT(plan->kv_tokens, 400000);
}

TEST(ShardPlannerTest, KvHeadsReplicateWhenTpExceedsThem) {
  STRATA_SHARED_DATA_OR_SKIP(dir, "configs/reconstructed__Llama-3.1-70B-Instruct");
  const ModelConfig c = Config("reconstructed__Llama-3.1-70B-Instruct");
  auto plan = Plan("reconstructed__Llama-3.1-70B-Instruct", Cluster(1, 16, 80));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->ranks[0].kv_heads, 1);
  EXPECT_EQ(plan->kv_replication, 2);
}

TEST(ShardPlannerTest, IndivisibleSplitsAreRefused) {
  STRATA_SHARED_DATA_OR_SKIP(dir, "configs/meta-llama__Llama-3.1-8B-Instruct");
  const ModelConfig c = Config("meta-llama__Llama-3.1-8B-Instruct");
  auto plan = Plan("meta-llama__Llama-3.1-8B-Instruct", Cluster(1, 3, 80));
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(plan.status().message().find("32 attention heads"), std::string::npos) << plan.status();
  EXPECT_EQ(Plan("meta-llama__Llama-3.1-8B-Instruct", Cluster(33, 1, 80)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ShardPlannerTest, AwqWeightsAreCountedAtFourBits) {
  STRATA_SHARED_DATA_OR_SKIP(dir, "configs/UCLA-EMC__Meta-Llama-3.1-8B-AWQ-INT4");
  const ModelConfig c = Config("UCLA-EMC__Meta-Llama-3.1-8B-AWQ-INT4");
  EXPECT_EQ(c.quant.method, QuantMethod::kAwq);
  EXPECT_EQ(c.quant.group_size, 128);
  // 7B linear parameters at ~4.2 bits plus 1B of f16 embedding and lm_head: ~5.7 GB.
  auto plan = Plan("UCLA-EMC__Meta-Llama-3.1-8B-AWQ-INT4", Cluster(1, 1, 80));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_NEAR(plan->total_weight_bytes / 1e9, 5.7, 0.3);
}

// Every real config.json in ../shared/data/configs parses and plans, on the largest TP (8, 4,
// 2, 1) its heads allow and devices big enough for any of them.
TEST(ShardPlannerTest, EveryRealConfigPlans) {
  STRATA_SHARED_DATA_OR_SKIP(configs, "configs");
  int planned = 0;
  for (const auto& entry : std::filesystem::directory_iterator(configs)) {
    if (!std::filesystem::exists(entry.path() / "config.json")) continue;
    SCOPED_TRACE(entry.path().filename().string());
    absl::StatusOr<ShardPlan> plan = absl::UnknownError("no TP size divides the model");
    for (int64_t tp : {8, 4, 2, 1}) {
      plan = PlanModel(entry.path().string(), Cluster(1, tp, 4096));
      if (plan.status().code() != absl::StatusCode::kFailedPrecondition) break;
    }
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_GT(plan->total_weight_bytes, int64_t{1} << 30);
    EXPECT_GT(plan->kv_tokens, 0);
    ++planned;
  }
  EXPECT_GE(planned, 16);
}

TEST(ShardPlannerTest, ExpertParallelPlacesWholeExperts) {
  STRATA_SHARED_DATA_OR_SKIP(dir, "configs/mistralai__Mixtral-8x7B-Instruct-v0.1");
  FootprintOptions ep;
  ep.expert_parallel = true;
  auto split = PlanModel(dir.string(), Cluster(1, 4, 80));
  auto spread = PlanModel(dir.string(), Cluster(1, 4, 80), {}, ep);
  ASSERT_TRUE(split.ok() && spread.ok()) << split.status() << spread.status();
  EXPECT_FALSE(split->expert_parallel);
  EXPECT_TRUE(spread->expert_parallel);
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(split->ranks[r].expert_begin, 0);
    EXPECT_EQ(split->ranks[r].expert_end, 8);
    EXPECT_EQ(spread->ranks[r].expert_begin, 2 * r);
    EXPECT_EQ(spread->ranks[r].expert_end, 2 * r + 2);
  }
  // The same bytes either way (a quarter of every expert, or every weight of a quarter of them).
  EXPECT_NEAR(spread->ranks[0].weight_bytes, split->ranks[0].weight_bytes,
              split->ranks[0].weight_bytes / 100);
  const std::string text = spread->Explain(Config("mistralai__Mixtral-8x7B-Instruct-v0.1"),
                                           Cluster(1, 4, 80));
  EXPECT_NE(text.find("TP rank 3 [6, 8)"), std::string::npos) << text;
}

// DeepSeek-V2's KV cache holds one latent row per token (kv_lora_rank + rope dims), not keys
// and values per head: the planner counts what the model's layers say.
TEST(ShardPlannerTest, LatentAttentionKvIsCountedFromTheModel) {
  STRATA_SHARED_DATA_OR_SKIP(dir, "fixtures/deepseek2/hf");
  auto plan = PlanModel(dir.string(), Cluster(1, 2, 2));
  ASSERT_TRUE(plan.ok()) << plan.status();
  // 3 layers x (32 + 8) values x 2 bytes (bf16), the same on both ranks (replicated latent).
  EXPECT_EQ(plan->ranks[0].kv_bytes_per_token, 3 * 40 * 2);
  EXPECT_EQ(plan->ranks[1].kv_bytes_per_token, 3 * 40 * 2);
}

TEST(ShardPlannerTest, ByteSizes) {
  EXPECT_EQ(*ParseByteSize("80GiB"), 80 * kGiB);
  EXPECT_EQ(*ParseByteSize("80GB"), 80'000'000'000);
  EXPECT_EQ(*ParseByteSize("512MiB"), 512 << 20);
  EXPECT_EQ(*ParseByteSize("1.5TiB"), static_cast<int64_t>(1.5 * 1099511627776.0));
  EXPECT_FALSE(ParseByteSize("lots").ok());
  EXPECT_FALSE(ParseByteSize("-3GiB").ok());
}

}  // namespace
}  // namespace strata

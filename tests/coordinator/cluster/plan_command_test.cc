// `strata plan` as a user runs it: it plans weights at the size the workers of --device hold
// them (GPU workers keep every matrix in bf16, so a q4_0 checkpoint takes about 3.5x its file
// there; CPU workers keep it as stored), as the coordinator plans a real cluster.
#include <cstdio>
#include <string>

#include "common/byte_size.h"
#include "coordinator/cluster/shard_planner.h"
#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"
#include "tests/testing/strata_binary.h"

namespace strata {
namespace {

using Outcome = testing::StrataRun;
using testing::RunStrata;

TEST(PlanCommandTest, GpuWorkersArePlannedAtTheirBf16Size) {
  const std::string model = (testing::TempDir("plan_command") / "q4.gguf").string();
  ASSERT_EQ(RunStrata("synth --preset tiny --dtype q4_0 -o " + model).code, 0);
  ClusterSpec cluster;
  cluster.memory_per_device = int64_t{8} << 30;
  auto total = [&](std::optional<DType> dtype) {
    FootprintOptions footprint;
    footprint.weight_dtype = dtype;
    absl::StatusOr<ShardPlan> plan = PlanModel(model, cluster, {}, footprint);
    EXPECT_TRUE(plan.ok()) << plan.status();
    return plan.ok() ? plan->total_weight_bytes : 0;
  };
  const int64_t stored = total(std::nullopt), bf16 = total(DType::kBF16);
  ASSERT_GT(bf16, 3 * stored) << "q4_0 is 4.5 bits a weight, bf16 16";

  const Outcome gpu = RunStrata("plan --memory 8GiB --device cuda --model " + model);
  ASSERT_EQ(gpu.code, 0) << gpu.output;
  EXPECT_NE(gpu.output.find(FormatBytes(bf16) + " of weights"), std::string::npos) << gpu.output;
  EXPECT_NE(gpu.output.find("weights held as bf16, KV cache as bf16"), std::string::npos)
      << gpu.output;
  const Outcome cpu = RunStrata("plan --memory 8GiB --device cpu --model " + model);
  ASSERT_EQ(cpu.code, 0) << cpu.output;
  EXPECT_NE(cpu.output.find(FormatBytes(stored) + " of weights"), std::string::npos) << cpu.output;
  EXPECT_NE(cpu.output.find("weights held as stored, KV cache as f32"), std::string::npos)
      << cpu.output;
  // The default is a GPU cluster.
  EXPECT_EQ(RunStrata("plan --memory 8GiB --model " + model).output, gpu.output);
  // A conversion GPU workers would not make is refused, naming why.
  const Outcome q8 = RunStrata("plan --memory 8GiB --device cuda --dtype q8_0 --model " + model);
  EXPECT_EQ(q8.code, 1);
  EXPECT_NE(q8.output.find("GPU workers keep every matrix in bf16"), std::string::npos) << q8.output;
}

// An f8_e4m3 KV cache is planned at a byte a value plus an f32 scale per (K or V, head) row: a
// bf16 cache's half, plus the scales, and so more tokens in the same memory.
TEST(PlanCommandTest, AnFp8KvCacheIsPlannedWithItsScales) {
  const std::string model = (testing::TempDir("plan_command_fp8") / "tiny.gguf").string();
  ASSERT_EQ(RunStrata("synth --preset tiny --dtype bf16 -o " + model).code, 0);
  ClusterSpec cluster;
  cluster.memory_per_device = int64_t{8} << 30;
  auto plan = [&](DType kv) {
    cluster.kv_dtype = kv;
    absl::StatusOr<ShardPlan> p = PlanModel(model, cluster, {}, {});
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : ShardPlan{};
  };
  const ShardPlan bf16 = plan(DType::kBF16), fp8 = plan(DType::kF8E4M3);
  ASSERT_FALSE(bf16.ranks.empty());
  ASSERT_FALSE(fp8.ranks.empty());
  const int64_t values = bf16.ranks[0].kv_bytes_per_token / 2;  // a bf16 cache: 2 bytes a value
  const int64_t scales = fp8.ranks[0].kv_bytes_per_token - values;
  ASSERT_GT(scales, 0);
  EXPECT_EQ(scales % 4, 0) << "f32 scales";
  EXPECT_EQ(values % (scales / 4), 0) << "a scale per row of head_dim values";
  EXPECT_GT(fp8.kv_tokens, bf16.kv_tokens);
  const Outcome cli = RunStrata("plan --memory 8GiB --kv-dtype f8_e4m3 --model " + model);
  ASSERT_EQ(cli.code, 0) << cli.output;
  EXPECT_NE(cli.output.find("KV cache as f8_e4m3"), std::string::npos) << cli.output;
  // A cache the device's workers would refuse is refused here too; f8_e4m3 is no weight type.
  const Outcome cpu = RunStrata("plan --memory 8GiB --device cpu --kv-dtype f8_e4m3 --model " + model);
  EXPECT_EQ(cpu.code, 1) << cpu.output;
  EXPECT_NE(cpu.output.find("CPU workers keep their KV cache in f32"), std::string::npos)
      << cpu.output;
  const Outcome weights = RunStrata("plan --memory 8GiB --dtype f8_e4m3 --model " + model);
  EXPECT_EQ(weights.code, 1) << weights.output;
  EXPECT_NE(weights.output.find("is not a weight type"), std::string::npos) << weights.output;
}

}  // namespace
}  // namespace strata

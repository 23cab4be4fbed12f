// Tensor- and pipeline-parallel Llama against one process: for every TP x PP split a model
// allows, TP ranks run as forked processes meeting through a FileStore (one Gloo group per
// pipeline stage), each rank chains its stages' ModelRunners through Forward, and the greedy
// tokens must equal the single-process run exactly, the logits within 1e-4 (fp32).
// Covers KV heads split (TP <= KV heads) and replicated (TP > KV heads).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"
#include "tests/worker/comm/multiprocess.h"
#include "worker/comm/communicator.h"
#include "worker/comm/gloo_communicator.h"
#include "worker/comm/store.h"
#include "tests/worker/model/model_testing.h"
#include "worker/backend/cpu_backend.h"
#include "worker/model/synthetic_model.h"
#include "worker/model/tp_split.h"
#include "worker/sampling/sampler.h"

namespace strata {
namespace {

constexpr int64_t kNewTokens = 16;
constexpr int64_t kKvBlocks = 8;
constexpr int32_t kBlockSize = 16;
constexpr float kLogitTolerance = 1e-4f;
const std::vector<int32_t> kPrompt = {1, 403, 407, 261, 378, 300, 290};

// One greedy generation: the tokens and each step's logits ([vocab] per step).
struct Greedy {
  std::vector<int32_t> tokens;
  std::vector<std::vector<float>> logits;
};

// Greedy decoding through a pipeline of runners (stage i feeds stage i + 1).
absl::StatusOr<Greedy> RunGreedy(const std::vector<std::unique_ptr<ModelRunner>>& stages) {
  Greedy g;
  std::vector<int32_t> step = kPrompt;
  int32_t cached = 0;
  for (int64_t i = 0; i < kNewTokens; ++i) {
    const StepBatch batch = testing::OneSequence(*stages[0], step, cached, /*all_logits=*/false);
    std::vector<float> hidden;
    for (const auto& stage : stages) {
      absl::StatusOr<std::vector<float>> out = testing::Forward(*stage, batch, hidden);
      if (!out.ok()) return out.status();
      hidden = *std::move(out);
    }
    cached += static_cast<int32_t>(step.size());
    g.tokens.push_back(Argmax(hidden));
    g.logits.push_back(std::move(hidden));
    step = {g.tokens.back()};
  }
  return g;
}

// Loads layers [begin, end) as TP rank `comm` (nullptr: one rank).
absl::StatusOr<std::unique_ptr<ModelRunner>> LoadStage(const std::string& path, Backend& backend,
                                                       int64_t begin, int64_t end,
                                                       Communicator* comm,
                                                       bool expert_parallel = false) {
  ModelLoadOptions options;
  options.expert_parallel = expert_parallel;
  options.layer_begin = begin;
  options.layer_end = end;
  options.kv_blocks = kKvBlocks;
  options.kv_block_size = kBlockSize;
  options.comm = comm;
  if (comm != nullptr) {
    options.tp_rank = comm->rank();
    options.tp_size = comm->world_size();
  }
  return LoadModel(path, backend, options);
}

// Child body: joins one TP group per stage, generates, and writes "<max diff> <tokens...>"
// (or "error <message>") to `result`. Returns 0 unless the file cannot be written.
int RunRank(const std::string& path, int rank, int tp, int pp, int64_t layers,
            bool expert_parallel, const std::filesystem::path& store_dir,
            const Greedy& reference, const std::filesystem::path& result) {
  std::ofstream out(result);
  auto fail = [&](const absl::Status& s) {
    out << "error " << s.ToString() << "\n";
    return out.good() ? 0 : 1;
  };
  std::unique_ptr<Backend> backend = MakeCpuBackend(1);
  FileStore store(store_dir);
  std::vector<std::unique_ptr<GlooCommunicator>> comms;
  std::vector<std::unique_ptr<ModelRunner>> stages;
  for (int s = 0; s < pp; ++s) {
    Communicator* comm = nullptr;
    if (tp > 1) {
      GlooOptions options;
      options.rank = rank;
      options.world_size = tp;
      options.timeout = std::chrono::milliseconds(10000);
      options.store_prefix = absl::StrCat("tp/stage", s);
      auto joined = GlooCommunicator::Create(options, store);
      if (!joined.ok()) return fail(joined.status());
      comms.push_back(*std::move(joined));
      comm = comms.back().get();
    }
    auto stage = LoadStage(path, *backend, s * layers / pp, (s + 1) * layers / pp, comm,
                           expert_parallel);
    if (!stage.ok()) return fail(stage.status());
    stages.push_back(*std::move(stage));
  }
  auto greedy = RunGreedy(stages);
  if (!greedy.ok()) return fail(greedy.status());
  float diff = 0;
  for (size_t i = 0; i < greedy->logits.size() && i < reference.logits.size(); ++i) {
    for (size_t j = 0; j < greedy->logits[i].size(); ++j) {
      diff = std::max(diff, std::fabs(greedy->logits[i][j] - reference.logits[i][j]));
    }
  }
  out << diff;
  for (int32_t t : greedy->tokens) out << " " << t;
  out << "\n";
  return out.good() ? 0 : 1;
}

struct Split {
  int tp;
  int pp;
  bool expert_parallel = false;
};

// Runs every split of `splits` the model allows (default: TP {1, 2, 4} x PP {1, 2, 3})
// against the single-process run.
void ExpectSplitsMatch(const std::string& path, const std::string& name,
                       std::vector<Split> splits = {}) {
  Greedy reference;
  ModelConfig config;
  {
    // The parent's backend (and its threads) is gone before any fork.
    std::unique_ptr<Backend> backend = MakeCpuBackend(1);
    auto model = LoadStage(path, *backend, 0, -1, nullptr);
    ASSERT_TRUE(model.ok()) << model.status();
    config = (*model)->config();
    std::vector<std::unique_ptr<ModelRunner>> stages;
    stages.push_back(*std::move(model));
    auto greedy = RunGreedy(stages);
    ASSERT_TRUE(greedy.ok()) << greedy.status();
    reference = *std::move(greedy);
  }
  if (splits.empty()) {
    for (int tp : {1, 2, 4}) {
      for (int pp : {1, 2, 3}) splits.push_back({tp, pp});
    }
  }
  for (const Split& split : splits) {
    const int tp = split.tp, pp = split.pp;
    if (!MakeTpLayout(config, 0, tp, split.expert_parallel).ok()) continue;
    if (pp > config.num_layers) continue;
    const std::string label =
        absl::StrCat(name, " TP", tp, " PP", pp, split.expert_parallel ? " EP" : "");
    SCOPED_TRACE(label);
    const std::filesystem::path dir = testing::TempDir(absl::StrCat(
        "tp_pp_", name, "_tp", tp, "_pp", pp, split.expert_parallel ? "_ep" : ""));
    auto result = [&](int rank) { return dir / absl::StrCat("rank", rank, ".txt"); };
    const auto exits = testing::RunRanks(tp, [&](int rank) {
      return RunRank(path, rank, tp, pp, config.num_layers, split.expert_parallel,
                     dir / "store", reference, result(rank));
    }, std::chrono::seconds(30));
    for (int rank = 0; rank < tp; ++rank) {
      ASSERT_TRUE(exits[rank].ok()) << exits[rank].Describe();
      std::ifstream in(result(rank));
      std::string first;
      in >> first;
      ASSERT_NE(first, "error") << "rank " << rank << ": " << std::string(
          std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      const float diff = std::stof(first);
      std::vector<int32_t> tokens;
      for (int32_t t; in >> t;) tokens.push_back(t);
      EXPECT_EQ(tokens, reference.tokens) << "rank " << rank;
      EXPECT_LE(diff, kLogitTolerance) << "rank " << rank;
      if (rank == 0) std::printf("%s: max logit diff %.3g\n", label.c_str(), diff);
    }
  }
}

// Every family's fixture (Hugging Face layout) at TP 2 (KV heads replicated where there are
// fewer: Falcon's one) and under PP 2, and the MoE families with their experts spread over two
// ranks (expert parallelism) as well as split.
class TpFamilyTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TpFamilyTest, SplitsMatchOneProcess) {
  STRATA_SHARED_DATA_OR_SKIP(model_path, "fixtures/" + GetParam() + "/hf");
  std::vector<Split> splits = {{2, 1}, {2, 2}};
  if (GetParam() == "mixtral" || GetParam() == "deepseek2") splits.push_back({2, 1, true});
  ExpectSplitsMatch(model_path.string(), GetParam(), splits);
}

INSTANTIATE_TEST_SUITE_P(Families, TpFamilyTest,
                         ::testing::Values("mistral", "mixtral", "qwen2", "qwen3", "phi3",
                                           "phi2", "gemma2", "olmo2", "falcon", "deepseek2"),
                         [](const auto& p) { return p.param; });

class TpPpSharedModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TpPpSharedModelTest, EverySplitMatchesOneProcess) {
  STRATA_SHARED_DATA_OR_SKIP(model_path, GetParam());
  std::string name = GetParam();
  for (char& c : name) {
    if (c == '/' || c == '.') c = '_';
  }
  ExpectSplitsMatch(model_path.string(), name);
}

INSTANTIATE_TEST_SUITE_P(
    Models, TpPpSharedModelTest,
    ::testing::Values("models/stories260K/hf", "models/stories260K/stories260K.gguf",
                      "fixtures/llama/hf", "fixtures/llama/model.gguf"),
    [](const auto& p) {
      const std::string family = p.param.find("stories") != std::string::npos ? "Stories260K"
                                                                                : "FixtureLlama";
      return family + (p.param.ends_with(".gguf") ? "Gguf" : "HuggingFace");
    });

// 16 query heads over 4 KV heads, 4 layers, hidden 128 (column slices stay 32-aligned at TP4).
TEST(TpPpSyntheticTest, EverySplitMatchesOneProcess) {
  SyntheticModelSpec spec;
  spec.name = "tp-pp-test";
  spec.hidden_size = 128;
  spec.intermediate_size = 256;
  spec.num_layers = 4;
  spec.num_heads = 16;
  spec.num_kv_heads = 4;
  const std::string path = (testing::TempDir("tp_pp_synthetic") / "model.gguf").string();
  ASSERT_TRUE(WriteSyntheticModel(spec, path).ok());
  ExpectSplitsMatch(path, "synthetic");
}

TEST(TpSplitTest, RefusesSplitsThatDoNotDivide) {
  ModelConfig config;
  config.num_heads = 8;
  config.num_kv_heads = 4;
  config.intermediate_size = 172;
  config.vocab_size = 512;
  auto three = MakeTpLayout(config, 0, 3);
  ASSERT_EQ(three.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(three.status().message().find("8 attention heads"), std::string::npos)
      << three.status();
  config.num_kv_heads = 3;
  config.num_heads = 12;
  config.intermediate_size = 96;
  auto kv = MakeTpLayout(config, 0, 2);
  ASSERT_EQ(kv.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(kv.status().message().find("3 KV heads"), std::string::npos) << kv.status();
}

TEST(TpSplitTest, ReplicatesKvHeadsWithTheirQueryGroups) {
  ModelConfig config;
  config.num_heads = 8;
  config.num_kv_heads = 2;
  config.intermediate_size = 320;
  config.vocab_size = 510;
  for (int rank = 0; rank < 4; ++rank) {
    auto s = MakeTpLayout(config, rank, 4);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->q_heads.begin, 2 * rank);
    EXPECT_EQ(s->kv_heads.size(), 1);
    EXPECT_EQ(s->kv_heads.begin, rank / 2);  // query heads 2r, 2r+1 sit in group r / 2
    EXPECT_EQ(s->vocab.begin, 128 * rank);
    EXPECT_EQ(s->vocab.size(), rank == 3 ? 126 : 128);
  }
}

TEST(TpLoadTest, TensorParallelWithoutCommunicatorIsRefused) {
  STRATA_SHARED_DATA_OR_SKIP(model_path, "fixtures/llama/model.gguf");
  std::unique_ptr<Backend> backend = MakeCpuBackend(1);
  ModelLoadOptions options;
  options.tp_size = 2;
  auto model = LoadModel(model_path.string(), *backend, options);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(model.status().message().find("communicator"), std::string::npos) << model.status();
}

// A group member that never communicates: enough to load a shard.
class IdleCommunicator : public Communicator {
 public:
  IdleCommunicator(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  bool device_memory() const override { return false; }
  absl::Status AllReduceSum(float*, int64_t) override { return Unused(); }
  absl::Status AllGather(const float*, int64_t, float*) override { return Unused(); }
  absl::Status Broadcast(float*, int64_t, int) override { return Unused(); }
  absl::Status Send(const float*, int64_t, int) override { return Unused(); }
  absl::Status Recv(float*, int64_t, int) override { return Unused(); }
  absl::Status Barrier() override { return Unused(); }

 private:
  static absl::Status Unused() { return absl::UnimplementedError("idle communicator"); }
  int rank_, size_;
};

TEST(TpLoadTest, QuantizedColumnSliceMustBeBlockAligned) {
  SyntheticModelSpec spec;
  spec.name = "tp-q8";
  spec.intermediate_size = 192;  // TP4: down_proj columns of 48, not whole q8_0 blocks
  spec.dtype = DType::kQ8_0;
  const std::string path = (testing::TempDir("tp_q8") / "model.gguf").string();
  ASSERT_TRUE(WriteSyntheticModel(spec, path).ok());
  std::unique_ptr<Backend> backend = MakeCpuBackend(1);
  IdleCommunicator two(1, 2), four(1, 4);
  ModelLoadOptions options;
  options.kv_blocks = 4;
  auto whole = LoadModel(path, *backend, options);
  ASSERT_TRUE(whole.ok()) << whole.status();
  options.tp_rank = 1;
  options.tp_size = 2;
  options.comm = &two;
  auto half = LoadModel(path, *backend, options);
  ASSERT_TRUE(half.ok()) << half.status();
  // Everything but the norms is split: a rank holds about half of the weights.
  EXPECT_LT((*half)->weight_bytes(), (*whole)->weight_bytes() * 51 / 100);
  EXPECT_LT((*half)->decode_weight_bytes(), (*whole)->decode_weight_bytes() * 51 / 100);
  options.tp_size = 4;
  options.comm = &four;
  auto quarter = LoadModel(path, *backend, options);
  ASSERT_EQ(quarter.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(quarter.status().message().find("aligned"), std::string::npos) << quarter.status();
}

}  // namespace
}  // namespace strata

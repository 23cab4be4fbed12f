// Tensor and pipeline parallelism across GPUs over NCCL: a Llama-shaped bf16 model (head dim
// 128) split over 2 (and 4) GPUs, ranks in threads of this process meeting through a
// FileStore, against the same model on one GPU: every greedy step's logits within a bf16
// tolerance (max |diff| <= 0.05 * max(1, max |logit|): the all-reduces sum in f32 and round
// once, but the split changes which partial sums are rounded to bf16), and the greedy ids equal
// where the one-GPU margin exceeds 0.1; every run is fed the one-GPU run's tokens. A pipeline
// alone (TP 1 x PP 2) must give the one-GPU logits bit for bit: the residual stream between
// layers is bf16 on one GPU too, the hand-off copies its bits, and each stage runs the same
// kernels on the same shapes. The pipeline runs through ShardRuntime, the worker's own
// hand-off code. Needs two CUDA devices; skips otherwise (label `gpu`).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"
#include "tests/worker/model/model_testing.h"
#include "worker/backend/cuda_backend.h"
#include "worker/comm/nccl_communicator.h"
#include "worker/comm/store.h"
#include "worker/model/synthetic_model.h"
#include "worker/runtime/shard_runtime.h"

namespace strata {
namespace {

constexpr int kSteps = 8;

int DeviceCount() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

// Decoding of `prompt` on a loaded shard, each step's full logits. Without `forced` each step
// feeds back its own argmax (greedy); with it, step i feeds forced[i] (the one-GPU run's
// tokens, so a near-tie that bf16 flips cannot send the runs down different paths).
std::vector<std::vector<float>> StepLogits(ModelRunner& runner, std::vector<int32_t> step,
                                           std::vector<int32_t>* tokens,
                                           const std::vector<int32_t>* forced) {
  std::vector<std::vector<float>> out;
  int32_t cached = 0;
  for (int i = 0; i < kSteps; ++i) {
    auto logits = testing::Forward(runner, testing::OneSequence(runner, step, cached, false));
    EXPECT_TRUE(logits.ok()) << logits.status();
    if (!logits.ok()) return out;
    cached += static_cast<int32_t>(step.size());
    const int32_t next =
        forced != nullptr
            ? (*forced)[i]
            : static_cast<int32_t>(std::max_element(logits->begin(), logits->end()) -
                                   logits->begin());
    if (tokens != nullptr) tokens->push_back(next);
    step = {next};
    out.push_back(*std::move(logits));
  }
  return out;
}

// The model both tests split: 4 layers, so a 2-stage pipeline gets 2 each.
std::string WriteModel(const std::string& name) {
  SyntheticModelSpec spec;
  spec.name = "strata-gpu-tp-random";
  spec.vocab_size = 1024;
  spec.hidden_size = 1024;
  spec.intermediate_size = 2048;
  spec.num_layers = 4;
  spec.num_heads = 8;
  spec.num_kv_heads = 4;
  spec.dtype = DType::kBF16;
  const std::string path = (testing::TempDir(name) / "model.gguf").string();
  EXPECT_TRUE(WriteSyntheticModel(spec, path).ok());
  return path;
}

// A split run's step logits against the one-GPU run's (see the header for the tolerance).
void ExpectCloseToOneGpu(const std::vector<std::vector<float>>& got,
                         const std::vector<std::vector<float>>& want, const std::string& who) {
  ASSERT_EQ(got.size(), want.size()) << who;
  for (size_t s = 0; s < want.size(); ++s) {
    const std::vector<float>& w = want[s];
    ASSERT_EQ(got[s].size(), w.size()) << who << " step " << s;
    float scale = 1.0f, first = -INFINITY, second = -INFINITY;
    for (float v : w) {
      scale = std::max(scale, std::fabs(v));
      if (v > first) {
        second = first;
        first = v;
      } else if (v > second) {
        second = v;
      }
    }
    const float diff =
        testing::MaxAbsDiff(got[s].data(), w.data(), static_cast<int64_t>(w.size()));
    EXPECT_LE(diff, 0.05f * scale) << who << " step " << s;
    if (first - second > 0.1f) {
      EXPECT_EQ(std::max_element(got[s].begin(), got[s].end()) - got[s].begin(),
                std::max_element(w.begin(), w.end()) - w.begin())
          << who << " step " << s;
    }
  }
}

TEST(CudaTensorParallelTest, SplitsMatchOneGpu) {
  const int devices = DeviceCount();
  if (devices < 2) GTEST_SKIP() << "needs two CUDA devices";
  const std::string path = WriteModel("cuda_tp");
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378, 300, 290, 555, 901};

  ModelLoadOptions options;
  options.kv_blocks = 8;
  auto one = testing::LoadForTest(path, options, 1, {DeviceKind::kCuda, 0});
  ASSERT_TRUE(one.ok()) << one.status();
  std::vector<int32_t> chain;
  const std::vector<std::vector<float>> want = StepLogits(*one->runner, prompt, &chain, nullptr);
  ASSERT_EQ(want.size(), static_cast<size_t>(kSteps));

  for (int world : {2, 4}) {
    if (world > devices) continue;
    SCOPED_TRACE(world);
    FileStore store(testing::TempDir("cuda_tp_store_" + std::to_string(world)));
    std::vector<std::vector<std::vector<float>>> got(world);
    std::vector<std::thread> ranks;
    for (int r = 0; r < world; ++r) {
      ranks.emplace_back([&, r] {
        NcclOptions nccl;
        nccl.rank = r;
        nccl.world_size = world;
        nccl.device = r;
        nccl.timeout = std::chrono::seconds(60);
        auto comm = NcclCommunicator::Create(nccl, store);
        ASSERT_TRUE(comm.ok()) << comm.status();
        ModelLoadOptions shard = options;
        shard.tp_rank = r;
        shard.tp_size = world;
        shard.comm = comm->get();
        auto loaded = testing::LoadForTest(path, shard, 1, {DeviceKind::kCuda, r});
        ASSERT_TRUE(loaded.ok()) << loaded.status();
        got[r] = StepLogits(*loaded->runner, prompt, nullptr, &chain);
      });
    }
    for (std::thread& t : ranks) t.join();
    for (int r = 0; r < world; ++r) ExpectCloseToOneGpu(got[r], want, "rank " + std::to_string(r));
  }
}

// Greedy steps through one worker's ShardRuntime: the prompt, then each forced token; the last
// stage's logits per step (empty on other stages).
std::vector<std::vector<float>> RunSteps(ShardRuntime& runtime, const std::vector<int32_t>& prompt,
                                         const std::vector<int32_t>& forced) {
  std::vector<std::vector<float>> out;
  std::vector<int32_t> tokens = prompt;
  int32_t cached = 0;
  for (int i = 0; i < kSteps; ++i) {
    StepInput in;
    in.return_logits = true;
    SequenceStepInput seq;
    seq.seq_id = 1;
    seq.tokens = tokens;
    seq.num_cached = cached;
    seq.num_prompt_tokens = static_cast<int32_t>(prompt.size());
    if (i == 0) {
      seq.start = true;
      for (int32_t b = 0; b < 8; ++b) seq.new_blocks.push_back(b);
    }
    seq.sampling.temperature = 0.0f;
    in.seqs.push_back(std::move(seq));
    StepOutput result;
    const absl::Status status = runtime.Run(in, result);
    EXPECT_TRUE(status.ok()) << status;
    if (!status.ok()) return out;
    out.push_back(std::move(result.logits));
    cached += static_cast<int32_t>(tokens.size());
    tokens = {forced[i]};
  }
  return out;
}

TEST(CudaPipelineParallelTest, StagesMatchOneGpu) {
  const int devices = DeviceCount();
  if (devices < 2) GTEST_SKIP() << "needs two CUDA devices";
  const std::string path = WriteModel("cuda_pp");
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378, 300, 290, 555, 901};
  ModelLoadOptions options;
  options.kv_blocks = 8;
  options.kv_block_size = 16;
  auto one = testing::LoadForTest(path, options, 1, {DeviceKind::kCuda, 0});
  ASSERT_TRUE(one.ok()) << one.status();
  std::vector<int32_t> chain;
  const std::vector<std::vector<float>> want = StepLogits(*one->runner, prompt, &chain, nullptr);
  ASSERT_EQ(want.size(), static_cast<size_t>(kSteps));

  // TP 1 x PP 2, and TP 2 x PP 2 where four GPUs exist: rank (t, s) on GPU s * tp + t joins
  // its stage's TP group, then its TP index's pipeline, as a worker does.
  for (int tp : {1, 2}) {
    const int pp = 2;
    if (tp * pp > devices) continue;
    SCOPED_TRACE(tp);
    FileStore store(testing::TempDir("cuda_pp_store_" + std::to_string(tp)));
    std::vector<std::vector<std::vector<float>>> got(tp * pp);
    std::vector<std::thread> ranks;
    for (int s = 0; s < pp; ++s) {
      for (int t = 0; t < tp; ++t) {
        ranks.emplace_back([&, s, t] {
          const int device = s * tp + t;
          auto group = [&](int rank, int world, const std::string& prefix) {
            NcclOptions nccl;
            nccl.rank = rank;
            nccl.world_size = world;
            nccl.device = device;
            nccl.timeout = std::chrono::seconds(60);
            nccl.store_prefix = prefix;
            return NcclCommunicator::Create(nccl, store);
          };
          absl::StatusOr<std::unique_ptr<NcclCommunicator>> tp_comm;
          if (tp > 1) {
            tp_comm = group(t, tp, "tp" + std::to_string(s));
            ASSERT_TRUE(tp_comm.ok()) << tp_comm.status();
          }
          auto pp_comm = group(s, pp, "pp" + std::to_string(t));
          ASSERT_TRUE(pp_comm.ok()) << pp_comm.status();
          ModelLoadOptions shard = options;
          shard.layer_begin = s * 2;
          shard.layer_end = s * 2 + 2;
          if (tp > 1) {
            shard.tp_rank = t;
            shard.tp_size = tp;
            shard.comm = tp_comm->get();
          }
          auto loaded = testing::LoadForTest(path, shard, 1, {DeviceKind::kCuda, device});
          ASSERT_TRUE(loaded.ok()) << loaded.status();
          StageRole role;
          role.pp_rank = s;
          role.pp_size = pp;
          role.tp_rank = t;
          role.pp_comm = pp_comm->get();
          ShardRuntime runtime(std::move(loaded->backend), std::move(loaded->runner), role);
          got[device] = RunSteps(runtime, prompt, chain);
        });
      }
    }
    for (std::thread& r : ranks) r.join();
    // The last stage's TP rank 0 samples and returns the logits.
    if (tp == 1) {
      EXPECT_EQ(got[pp - 1], want) << "a pipeline's hand-off changed the bits";
    } else {
      ExpectCloseToOneGpu(got[(pp - 1) * tp], want, "the last stage");
    }
  }
}

}  // namespace
}  // namespace strata

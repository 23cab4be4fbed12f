// Tensor parallelism across GPUs over NCCL: a Llama-shaped bf16 model (head dim 128) split over
// 2 (and 4) GPUs, ranks in threads of this process meeting through a FileStore, against the
// same model on one GPU: every greedy step's logits within a bf16 tolerance (the all-reduces
// sum in f32 and round once, but the split changes which partial sums are rounded to bf16:
// max |diff| <= 0.05 * max(1, max |logit|)), and the greedy ids equal where the one-GPU
// margin exceeds 0.1; every run is fed the one-GPU run's tokens. Needs two CUDA devices; skips
// otherwise (label `gpu`).
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

TEST(CudaTensorParallelTest, SplitsMatchOneGpu) {
  const int devices = DeviceCount();
  if (devices < 2) GTEST_SKIP() << "needs two CUDA devices";
  SyntheticModelSpec spec;
  spec.name = "strata-gpu-tp-random";
  spec.vocab_size = 1024;
  spec.hidden_size = 1024;
  spec.intermediate_size = 2048;
  spec.num_layers = 2;
  spec.num_heads = 8;
  spec.num_kv_heads = 4;
  spec.dtype = DType::kBF16;
  const std::string path = (testing::TempDir("cuda_tp") / "model.gguf").string();
  ASSERT_TRUE(WriteSyntheticModel(spec, path).ok());
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
    for (int r = 0; r < world; ++r) {
      ASSERT_EQ(got[r].size(), want.size()) << "rank " << r;
      for (int s = 0; s < kSteps; ++s) {
        const std::vector<float>& w = want[s];
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
        const float diff = testing::MaxAbsDiff(got[r][s].data(), w.data(),
                                               static_cast<int64_t>(w.size()));
        EXPECT_LE(diff, 0.05f * scale) << "rank " << r << " step " << s;
        if (first - second > 0.1f) {
          EXPECT_EQ(std::max_element(got[r][s].begin(), got[r][s].end()) - got[r][s].begin(),
                    std::max_element(w.begin(), w.end()) - w.begin())
              << "rank " << r << " step " << s;
        }
      }
    }
  }
}

}  // namespace
}  // namespace strata

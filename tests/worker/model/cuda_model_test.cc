// Models on the CUDA backend against independent references, where a GPU is present (label
// `gpu`; skips elsewhere):
//  * stories260K (a real trained model, head dim 8: the generic attention kernel): its golden
//    greedy continuations (llama2.c / llama.cpp), teacher-forced, from both formats;
//  * the families' fixtures (Mixtral's and DeepSeek-V2's experts included, and DeepSeek-V2's
//    latent attention; Mixtral's routing has one near-tie, see CudaFixtureTest): logits at
//    every prompt position and every greedy step (decode, fed the golden's tokens) within a
//    bf16 tolerance of llama.cpp's (or the float64 reference's): max |logit - golden| <= 0.05 *
//    max(1, max |golden|), i.e. a few bf16 roundings carried through the layers;
//    With STRATA_LOGITS_OUT set, the prompt logits are also written there (raw f32, one file per
//    model and case, named <family>_<hf|gguf>_case<k>.f32) for scripts/gpu-check.sh to compare
//    with Hugging Face transformers on the same GPU (tests/worker/model/hf_reference.py);
//  * batch invariance: seeded requests get the same ids alone and in batches of 8 and 128
//    (dense and mixture-of-experts models);
//  * steps allocate no device memory after load (the step memory is reserved for the limits);
//  * decode steps replayed from the CUDA graphs recorded at load equal steps queued op by op,
//    bit for bit, padded or not (dense and mixture-of-experts models);
//  * an f8_e4m3 KV cache keeps stories260K's clear predictions;
//  * --hopper-prefill (compute capability 9.0): logits as close to the CPU's as the portable
//    kernel's, seeded requests invariant in a batch; refused on other GPUs;
//  * what the GPU does not run yet (quantized weights) fails with a clear error, never a wrong
//    answer.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "coordinator/engine/batch_generate.h"
#include "gtest/gtest.h"
#include "kernels/cuda/attention.h"
#include "tests/testing/shared_data.h"
#include "tests/worker/model/golden.h"
#include "tests/worker/model/model_testing.h"
#include "worker/backend/backends.h"
#include "worker/model/synthetic_model.h"
#include "worker/runtime/local_executor.h"

namespace strata {
namespace {

const DeviceSpec kCuda = DeviceSpec::Of(DeviceKind::kCuda, 0);

bool HaveGpu() { return ProbeDevice(kCuda).ok(); }

// stories260K's golden continuations have near-ties (top-1 over top-2 by 0.003 at places),
// which bf16 activations can flip, after which free-running greedy diverges: exact equality
// of whole continuations is not a property bf16 has. So the check is teacher-forced: the
// golden continuation is fed as one sequence, and at every position where the CPU's f32
// margin between the golden token and the runner-up exceeds 0.1, the GPU's argmax must be the
// golden token; at least 90 % of positions must be that clear.
class CudaStories260KTest : public ::testing::TestWithParam<std::string> {};

int32_t ArgmaxOf(const float* row, int64_t n) {
  return static_cast<int32_t>(std::max_element(row, row + n) - row);
}

// Top-1 minus top-2 of a row.
float Margin(const float* row, int64_t n) {
  float first = -INFINITY, second = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    if (row[i] > first) {
      second = first;
      first = row[i];
    } else if (row[i] > second) {
      second = row[i];
    }
  }
  return first - second;
}

// stories260K's golden records as teacher-forced sequences: the prompt, then the golden
// continuation but its last token, so that row `first + i` predicts golden[i].
struct TeacherForced {
  std::string prompt;
  std::vector<int32_t> tokens;
  std::vector<int32_t> golden;
  size_t first = 0;
};
std::vector<TeacherForced> LoadTeacherForced(const std::filesystem::path& path) {
  std::vector<TeacherForced> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const boost::json::value rec = boost::json::parse(line);
    TeacherForced& r = out.emplace_back();
    r.prompt = rec.at("prompt").as_string();
    r.tokens = testing::ToIds(rec.at("prompt_ids"));
    r.golden = testing::ToIds(rec.at("greedy_ids"));
    r.first = r.tokens.size() - 1;
    r.tokens.insert(r.tokens.end(), r.golden.begin(), r.golden.end() - 1);
  }
  return out;
}

TEST_P(CudaStories260KTest, TeacherForcedArgmaxMatchesGoldenWhereClear) {
  STRATA_SHARED_DATA_OR_SKIP(model_path, GetParam());
  STRATA_SHARED_DATA_OR_SKIP(golden_path, "golden/stories260K.jsonl");
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  ModelLoadOptions options;
  options.kv_blocks = 32;
  options.max_logit_rows = 256;
  auto gpu = testing::LoadForTest(model_path.string(), options, 1, kCuda);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  auto cpu = testing::LoadForTest(model_path.string(), options, 1);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  const int64_t vocab = gpu->runner->config().vocab_size;
  int records = 0, checked = 0, total = 0;
  for (const TeacherForced& r : LoadTeacherForced(golden_path)) {
    auto on_gpu = testing::Forward(*gpu->runner, testing::OneSequence(*gpu->runner, r.tokens, 0, true));
    ASSERT_TRUE(on_gpu.ok()) << on_gpu.status();
    auto on_cpu = testing::Forward(*cpu->runner, testing::OneSequence(*cpu->runner, r.tokens, 0, true));
    ASSERT_TRUE(on_cpu.ok()) << on_cpu.status();
    for (size_t i = 0; i < r.golden.size(); ++i) {
      const float* g = on_gpu->data() + (r.first + i) * vocab;
      const float* c = on_cpu->data() + (r.first + i) * vocab;
      ASSERT_EQ(ArgmaxOf(c, vocab), r.golden[i]) << "the CPU itself disagrees at step " << i;
      ++total;
      if (Margin(c, vocab) <= 0.1f) continue;  // a near-tie: bf16 may pick either
      ++checked;
      EXPECT_EQ(ArgmaxOf(g, vocab), r.golden[i]) << "prompt " << r.prompt << ", step " << i;
    }
    ++records;
  }
  EXPECT_EQ(records, 5);
  EXPECT_GE(checked, total * 9 / 10) << "too few clear positions to check";
  std::printf("%s on cuda: %d of %d golden positions clear of a near-tie, all checked\n",
              GetParam().c_str(), checked, total);
}

// An f8_e4m3 KV cache on a trained model: wherever the CPU's f32 margin between the golden
// token and the runner-up exceeds 1.0, the GPU still predicts the golden token (each cached
// value is within e4m3's half step of 1/16, relative, of its row's scale). The largest logit
// difference from the bf16 cache's run is printed for the record, not asserted.
TEST(CudaStories260KFp8Test, Fp8KvCacheKeepsClearPredictions) {
  STRATA_SHARED_DATA_OR_SKIP(model_path, "models/stories260K/hf");
  STRATA_SHARED_DATA_OR_SKIP(golden_path, "golden/stories260K.jsonl");
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  ModelLoadOptions options;
  options.kv_blocks = 32;
  options.max_logit_rows = 256;
  DeviceSpec fp8_device = kCuda;
  fp8_device.kv_dtype = DType::kF8E4M3;
  auto fp8 = testing::LoadForTest(model_path.string(), options, 1, fp8_device);
  ASSERT_TRUE(fp8.ok()) << fp8.status();
  ASSERT_EQ(fp8->runner->backend().device().kv_dtype, DType::kF8E4M3);
  auto bf16 = testing::LoadForTest(model_path.string(), options, 1, kCuda);
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  auto cpu = testing::LoadForTest(model_path.string(), options, 1);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  const int64_t vocab = cpu->runner->config().vocab_size;
  int checked = 0, total = 0;
  float largest = 0.0f;
  for (const TeacherForced& r : LoadTeacherForced(golden_path)) {
    auto run = [&](ModelRunner& runner) {
      auto logits = testing::Forward(runner, testing::OneSequence(runner, r.tokens, 0, true));
      EXPECT_TRUE(logits.ok()) << logits.status();
      return logits.ok() ? *std::move(logits) : std::vector<float>();
    };
    const std::vector<float> q = run(*fp8->runner), b = run(*bf16->runner), c = run(*cpu->runner);
    ASSERT_EQ(q.size(), c.size());
    ASSERT_EQ(b.size(), c.size());
    largest = std::max(largest, testing::MaxAbsDiff(q.data(), b.data(), static_cast<int64_t>(q.size())));
    for (size_t i = 0; i < r.golden.size(); ++i) {
      const float* row = c.data() + (r.first + i) * vocab;
      ++total;
      if (Margin(row, vocab) <= 1.0f) continue;
      ++checked;
      EXPECT_EQ(ArgmaxOf(q.data() + (r.first + i) * vocab, vocab), r.golden[i])
          << "prompt " << r.prompt << ", step " << i;
    }
  }
  EXPECT_GE(checked, total / 2) << "too few clear positions to check";
  std::printf("stories260K with an f8_e4m3 KV cache: %d of %d golden positions clear by 1.0, all "
              "checked; largest logit difference from the bf16 cache: %.4f\n",
              checked, total, largest);
}

INSTANTIATE_TEST_SUITE_P(Formats, CudaStories260KTest,
                         ::testing::Values("models/stories260K/hf",
                                           "models/stories260K/stories260K.gguf"),
                         [](const auto& p) {
                           return p.param.ends_with(".gguf") ? std::string("Gguf")
                                                             : std::string("HuggingFace");
                         });

// What bf16 can be held to on each fixture. Measured by loading the fixtures on the CPU with
// bf16 weights (f32 activations) against the same goldens, err(p) = max |logit - golden| /
// max(1, max |golden|) at each of the 96 positions (2 cases x 24 prompt positions and 24
// greedy steps, step 0 being the last prompt position again; the test checks the 94 distinct):
//  * the dense families but Gemma 2: err <= 0.025 everywhere. Bound: 0.05 everywhere (room for
//    the GPU's bf16 activations and KV cache);
//  * the MoE families: err <= 0.013 except where a routing decision is a near-tie and flips,
//    a discrete jump: Mixtral 1 position (0.199; case 0, position 19, whose 2nd/3rd expert
//    router logits are 9.2e-4 apart in f32), DeepSeek-V2 4 positions (0.086 to 0.288). Bound:
//    0.05 at all but 10% of positions, those within 0.5;
//  * Gemma 2 (26 random layers): err grows with the position, through attention, from 0.013 at
//    a case's first position to 0.446 (f16 weights: 0.066; f32 already 3.3e-4 off, where the
//    others are 1e-5): the fixture's conditioning, not bf16's error. Bound: 0.05 at each case's
//    first position.
// And everywhere, for every family: each side's top token ranks within the other's top 10
// (bf16 weights: 23 of Gemma 2's 96 positions disagree on the top token, at worst rank 5;
// DeepSeek-V2's worst is rank 6, at a flipped routing).
struct FixtureBound {
  std::string path;        // under fixtures/
  double far_share = 0.0;  // positions allowed past 0.05 (routing near-ties)
  bool first_position_only = false;
};

class CudaFixtureTest : public ::testing::TestWithParam<FixtureBound> {};

// How far `got` ranks `id` (0: its top token).
int64_t RankOf(const float* got, int64_t vocab, int64_t id) {
  return std::count_if(got, got + vocab, [&](float x) { return x > got[id]; });
}

TEST_P(CudaFixtureTest, PromptAndDecodeLogitsWithinBf16Tolerance) {
  const FixtureBound& bound = GetParam();
  const std::string family = bound.path.substr(0, bound.path.find('/'));
  STRATA_SHARED_DATA_OR_SKIP(model_path, "fixtures/" + bound.path);
  STRATA_SHARED_DATA_OR_SKIP(golden_path, "fixtures/" + family + "/golden.json");
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  ModelLoadOptions options;
  options.kv_blocks = 8;
  options.max_logit_rows = 64;
  auto model = testing::LoadForTest(model_path.string(), options, 1, kCuda);
  ASSERT_TRUE(model.ok()) << model.status();
  ModelRunner& runner = *model->runner;
  const int64_t vocab = runner.config().vocab_size;
  const char* dump_dir = std::getenv("STRATA_LOGITS_OUT");
  std::vector<float> errors;  // err at every position checked against 0.05
  int64_t worst_rank = 0;
  int case_index = 0;
  for (const testing::FixtureCase& c : testing::LoadFixtureGolden(golden_path)) {
    auto logits = testing::Forward(runner, testing::OneSequence(runner, c.tokens, 0, true));
    ASSERT_TRUE(logits.ok()) << logits.status();
    ASSERT_EQ(logits->size(), c.tokens.size() * vocab);
    if (dump_dir != nullptr && *dump_dir != '\0') {
      const std::string name = family + (bound.path.ends_with(".gguf") ? "_gguf" : "_hf") +
                               "_case" + std::to_string(case_index) + ".f32";
      std::ofstream out(std::filesystem::path(dump_dir) / name, std::ios::binary);
      out.write(reinterpret_cast<const char*>(logits->data()),
                static_cast<std::streamsize>(logits->size() * sizeof(float)));
      EXPECT_TRUE(out.good()) << "cannot write " << name << " under " << dump_dir;
    }
    ++case_index;
    auto check = [&](const float* got, const std::vector<float>& want, bool first,
                     const std::string& where) {
      float scale = 1.0f;
      for (float w : want) scale = std::max(scale, std::fabs(w));
      const float err = testing::MaxAbsDiff(got, want.data(), vocab) / scale;
      if (first || !bound.first_position_only) {  // held to 0.05 (at most far_share past it)
        EXPECT_LE(err, bound.far_share > 0 ? 0.5f : 0.05f) << where;
        errors.push_back(err);
      }
      const int64_t rank = std::max(RankOf(want.data(), vocab, ArgmaxOf(got, vocab)),
                                    RankOf(got, vocab, ArgmaxOf(want.data(), vocab)));
      EXPECT_LT(rank, 10) << where << ": the top tokens disagree";
      worst_rank = std::max(worst_rank, rank);
    };
    for (size_t p = 0; p < c.tokens.size(); ++p) {
      check(logits->data() + p * vocab, c.logits_all[p], p == 0, "position " + std::to_string(p));
    }
    // Decode steps (the decode kernels, replayed from recorded graphs), fed the
    // golden's greedy tokens: a near-tie bf16 resolves the other way must not end the check.
    // Greedy step 0 is the last prompt position, checked above.
    auto cached = static_cast<int32_t>(c.tokens.size());
    for (size_t i = 1; i < c.greedy.size(); ++i) {
      auto step = testing::Forward(runner, testing::OneSequence(runner, {c.greedy[i - 1]},
                                                                cached++, false));
      ASSERT_TRUE(step.ok()) << step.status();
      check(step->data(), c.greedy_step_logits[i], false, "greedy step " + std::to_string(i));
    }
  }
  ASSERT_FALSE(errors.empty());
  const auto far = std::count_if(errors.begin(), errors.end(), [](float e) { return e > 0.05f; });
  EXPECT_LE(far, static_cast<int64_t>(bound.far_share * static_cast<double>(errors.size())))
      << far << " of " << errors.size() << " positions are past 0.05 of scale";
  std::sort(errors.begin(), errors.end());
  std::printf("%s on cuda: err = max |logit - golden| / max(1, |golden|): median %.3g, max %.3g "
              "over %zu positions (%ld past 0.05); worst rank of a top token %ld\n",
              bound.path.c_str(), errors[errors.size() / 2], errors.back(), errors.size(),
              static_cast<long>(far), static_cast<long>(worst_rank));
}

INSTANTIATE_TEST_SUITE_P(
    Families, CudaFixtureTest,
    ::testing::Values(FixtureBound{"llama/hf"}, FixtureBound{"llama/model.gguf"},
                      FixtureBound{"mistral/hf"}, FixtureBound{"qwen2/hf"},
                      FixtureBound{"qwen3/hf"}, FixtureBound{"phi3/hf"}, FixtureBound{"phi2/hf"},
                      FixtureBound{"gemma2/hf", 0.0, true}, FixtureBound{"olmo2/hf"},
                      FixtureBound{"falcon/hf"}, FixtureBound{"mixtral/hf", 0.1},
                      FixtureBound{"deepseek2/hf", 0.1}),
    [](const auto& p) {
      std::string name = p.param.path;
      std::replace(name.begin(), name.end(), '/', '_');
      std::replace(name.begin(), name.end(), '.', '_');
      return name;
    });

// A random bf16 model of 2 layers whose head dim (128) takes the tuned attention kernels
// (vocabulary 512, 4 query and 2 KV heads), written under a temporary directory named for
// `test`; with `experts` > 0, a Mixtral-shaped one (that many experts of 1024, top 2). Empty if
// it could not be written.
std::string WriteHeadDim128Model(std::string test, int64_t experts = 0) {
  if (experts > 0) test += "_moe";  // a directory of its own: ctest may run both at once
  SyntheticModelSpec spec;
  spec.name = "strata-gpu-" + test + "-random";
  spec.num_experts = experts;
  spec.vocab_size = 512;
  spec.hidden_size = 512;
  spec.intermediate_size = 1024;
  spec.num_layers = 2;
  spec.num_heads = 4;
  spec.num_kv_heads = 2;
  spec.dtype = DType::kBF16;
  const std::string path = (testing::TempDir("cuda_" + test) / "model.gguf").string();
  return WriteSyntheticModel(spec, path).ok() ? path : std::string();
}

// Batch invariance on the GPU: seeded requests (temperature 0.8, top-p 0.9) get the same ids
// alone as inside batches of 8 and 128 requests of mixed prompt lengths, through the engine
// (continuous batching, chunked prefill), on a model whose head dim (128) takes the tuned
// attention kernels, dense and with 8 experts (whose positions inside an expert's products
// change with the batch).
class CudaInvarianceTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(CudaInvarianceTest, SeededRequestsGetTheSameIdsAloneAndInBatches) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  const std::string path = WriteHeadDim128Model("invariance", GetParam());
  ASSERT_FALSE(path.empty());
  LocalExecutorOptions local;
  local.model = path;
  local.backend.device = kCuda;
  local.kv_tokens = 128 * 200;
  auto executor = LocalExecutor::Create(local);
  ASSERT_TRUE(executor.ok()) << executor.status();

  std::mt19937 random(5);
  std::vector<std::vector<int32_t>> prompts(128);
  for (auto& prompt : prompts) {
    prompt.resize(1 + random() % 150);
    for (int32_t& t : prompt) t = 3 + static_cast<int32_t>(random() % 500);
  }
  engine::BatchGenerateOptions options;
  options.max_new_tokens = 24;
  options.stop_at_eos = false;
  options.sampling.temperature = 0.8f;
  options.sampling.top_p = 0.9f;
  options.sampling.seed = 77;
  std::vector<std::vector<int32_t>> alone;
  for (const auto& prompt : prompts) {
    auto r = engine::GenerateBatch(**executor, {prompt}, options);
    ASSERT_TRUE(r.ok()) << r.status();
    alone.push_back(r->sequences[0].tokens);
  }
  for (size_t batch : {size_t{8}, size_t{128}}) {
    const std::vector<std::vector<int32_t>> some(prompts.begin(), prompts.begin() + batch);
    auto r = engine::GenerateBatch(**executor, some, options);
    ASSERT_TRUE(r.ok()) << r.status();
    for (size_t i = 0; i < batch; ++i) {
      EXPECT_EQ(r->sequences[i].tokens, alone[i])
          << "request " << i << " (prompt " << prompts[i].size() << ") in a batch of " << batch;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DenseAndMoe, CudaInvarianceTest, ::testing::Values(0, 8),
                         [](const auto& p) { return p.param == 0 ? "Dense" : "Moe"; });

// Steps allocate nothing once a model is loaded: the backend's own step memory (metadata,
// attention partials, sampling) is reserved for the runner's limits at load. Modules load
// eagerly (CUDA_MODULE_LOADING=EAGER, set by ctest and gpu-check: lazy loading would take
// device memory at each kernel's first launch, cuBLASLt's included); after a one-request
// warm-up, the device's free memory stays the same through batches of up to 128 requests
// sampled plainly, with penalties and bias, and with logprobs. Without the reservation the
// sampling memory alone would grow by 16 MiB (128 rows of a 32k vocabulary). Requests with
// penalties and bias also get the same ids alone as in the batch.
TEST(CudaModelTest, StepsAllocateNothingAfterLoad) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  const char* loading = std::getenv("CUDA_MODULE_LOADING");
  ASSERT_TRUE(loading != nullptr && std::string(loading) == "EAGER")
      << "run with CUDA_MODULE_LOADING=EAGER (ctest and scripts/gpu-check.sh set it): lazily "
         "loaded kernels take device memory at their first launch";
  SyntheticModelSpec spec;
  spec.name = "strata-gpu-reserve-random";
  spec.vocab_size = 32000;
  spec.hidden_size = 256;
  spec.intermediate_size = 512;
  spec.num_layers = 2;
  spec.num_heads = 4;
  spec.num_kv_heads = 2;
  spec.dtype = DType::kBF16;
  const std::string path = (testing::TempDir("cuda_reserve") / "model.gguf").string();
  ASSERT_TRUE(WriteSyntheticModel(spec, path).ok());
  LocalExecutorOptions local;
  local.model = path;
  local.backend.device = kCuda;
  local.kv_tokens = 128 * 400;
  auto executor = LocalExecutor::Create(local);
  ASSERT_TRUE(executor.ok()) << executor.status();

  std::vector<engine::BatchGenerateOptions> variants(3);
  for (engine::BatchGenerateOptions& o : variants) {
    o.max_new_tokens = 8;
    o.stop_at_eos = false;
    o.sampling.temperature = 0.9f;
    o.sampling.top_k = 50;
    o.sampling.seed = 3;
  }
  variants[1].sampling.repetition_penalty = 1.3f;
  variants[1].sampling.frequency_penalty = 0.5f;
  variants[1].sampling.presence_penalty = 0.2f;
  variants[1].sampling.logit_bias = {{100, 5.0f}, {7, -100.0f}};
  variants[2].sampling.logprobs = 2;
  std::vector<int32_t> long_prompt(300);
  for (size_t i = 0; i < long_prompt.size(); ++i) long_prompt[i] = 3 + static_cast<int32_t>(i * 7 % 31000);
  for (const engine::BatchGenerateOptions& o : variants) {  // the warm-up: every path once
    auto r = engine::GenerateBatch(**executor, {long_prompt}, o);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  auto device = ProbeDevice(kCuda);
  ASSERT_TRUE(device.ok()) << device.status();
  const int64_t free_after_load = device->memory_free;

  std::mt19937 random(9);
  std::vector<std::vector<int32_t>> prompts(128);
  for (auto& prompt : prompts) {
    prompt.resize(1 + random() % 250);
    for (int32_t& t : prompt) t = 3 + static_cast<int32_t>(random() % 31000);
  }
  for (size_t v = 0; v < variants.size(); ++v) {
    auto batch = engine::GenerateBatch(**executor, prompts, variants[v]);
    ASSERT_TRUE(batch.ok()) << batch.status();
    device = ProbeDevice(kCuda);
    ASSERT_TRUE(device.ok()) << device.status();
    EXPECT_EQ(device->memory_free, free_after_load)
        << "variant " << v << ": device memory allocated by steps after load";
    if (v != 1) continue;
    for (size_t i = 0; i < 8; ++i) {
      auto alone = engine::GenerateBatch(**executor, {prompts[i]}, variants[v]);
      ASSERT_TRUE(alone.ok()) << alone.status();
      EXPECT_EQ(batch->sequences[i].tokens, alone->sequences[0].tokens)
          << "request " << i << " with penalties and bias, alone and in a batch of 128";
    }
  }
}

// Decode steps replayed from the graphs recorded at load compute what the same steps queued
// op by op compute, bit for bit. A step of n sequences is padded to the next recorded size b
// (1, 2, 4, 8, 16, 24, ...): its n rows of logits equal the first n rows of an eager step of
// the first b sequences (the same matmul shapes, and a row depends on its own sequence only).
// Eight sequences with contexts of 5 to 300 tokens; steps of 1, 3, 4, 5 and 8 of them, then
// four more steps of all eight (replays with new metadata, contexts crossing blocks). Dense,
// and with 8 experts (routed and run on the device inside the recording).
class CudaGraphTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(CudaGraphTest, GraphReplaysEqualStepsQueuedOpByOp) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  const std::string path = WriteHeadDim128Model("graphs", GetParam());
  ASSERT_FALSE(path.empty());
  constexpr int64_t kVocab = 512;
  constexpr int kSeqs = 8, kBlocksPerSeq = 32, kBlockSize = 16;
  ModelLoadOptions options;
  options.kv_blocks = kSeqs * kBlocksPerSeq;
  options.kv_block_size = kBlockSize;
  options.max_logit_rows = 40;
  DeviceSpec eager = kCuda;
  eager.eager = true;
  auto graphs = testing::LoadForTest(path, options, 1, kCuda);
  ASSERT_TRUE(graphs.ok()) << graphs.status();
  auto queued = testing::LoadForTest(path, options, 1, eager);
  ASSERT_TRUE(queued.ok()) << queued.status();
  // Every size recorded at load (a recording that failed would have left none, with a warning).
  EXPECT_EQ(graphs->backend->GraphBatches(), (std::vector<int64_t>{1, 2, 4, 8, 16, 24, 32, 40}));
  EXPECT_TRUE(queued->backend->GraphBatches().empty());

  std::mt19937 random(11);
  std::vector<std::vector<int32_t>> prompts(kSeqs), tables(kSeqs);
  for (int s = 0; s < kSeqs; ++s) {
    prompts[s].resize(s == 0 ? 5 : 1 + random() % 300);
    for (int32_t& t : prompts[s]) t = 3 + static_cast<int32_t>(random() % 500);
    for (int b = 0; b < kBlocksPerSeq; ++b) tables[s].push_back(s * kBlocksPerSeq + b);
    for (testing::LoadedModel* m : {&*graphs, &*queued}) {
      StepBatch prefill;
      prefill.AddSequence(prompts[s], 0, tables[s], kBlockSize, false);
      ASSERT_TRUE(testing::Forward(*m->runner, prefill).ok());
    }
  }
  std::vector<int32_t> next(kSeqs), cached(kSeqs);
  for (int s = 0; s < kSeqs; ++s) {
    next[s] = 3 + static_cast<int32_t>(random() % 500);
    cached[s] = static_cast<int32_t>(prompts[s].size());
  }
  auto decode = [&](int n) {
    StepBatch batch;
    for (int s = 0; s < n; ++s) {
      batch.AddSequence({next[s]}, cached[s], tables[s], kBlockSize, false);
    }
    return batch;
  };
  auto expect_rows_equal = [&](int n, int padded) {
    auto replayed = testing::Forward(*graphs->runner, decode(n));
    auto reference = testing::Forward(*queued->runner, decode(padded));
    ASSERT_TRUE(replayed.ok()) << replayed.status();
    ASSERT_TRUE(reference.ok()) << reference.status();
    ASSERT_EQ(replayed->size(), static_cast<size_t>(n) * kVocab);
    EXPECT_EQ(std::memcmp(replayed->data(), reference->data(), replayed->size() * sizeof(float)), 0)
        << n << " sequences (padded to " << padded << ") against an eager step of " << padded;
  };
  const std::pair<int, int> sizes[] = {{1, 1}, {3, 4}, {4, 4}, {5, 8}, {8, 8}};  // n, padded
  for (const auto& [n, padded] : sizes) expect_rows_equal(n, padded);
  for (int step = 0; step < 4; ++step) {
    for (int s = 0; s < kSeqs; ++s) {
      ++cached[s];
      next[s] = 3 + static_cast<int32_t>(random() % 500);
    }
    expect_rows_equal(kSeqs, kSeqs);
  }
}

INSTANTIATE_TEST_SUITE_P(DenseAndMoe, CudaGraphTest, ::testing::Values(0, 8),
                         [](const auto& p) { return p.param == 0 ? "Dense" : "Moe"; });

// Whether GPU 0 runs the Hopper prefill kernel (compute capability 9.0, sm_90a code built).
bool HaveHopper() {
  return HaveGpu() && kernels::cuda::ComputeCapability(0) == 90 &&
         kernels::cuda::HopperPrefillBuilt();
}

// --hopper-prefill through the backend: on compute capability 9.0, a 300-token prompt's
// logits (head dim 128, every row through the Hopper kernel) are as close to the CPU's f32 as
// the portable kernel's are (within twice their largest difference), and seeded requests keep
// their ids alone and in a batch of 16; on other GPUs the backend refuses the flag, naming
// the compute capability.
TEST(CudaModelTest, HopperPrefillMatchesThePortableKernelsAccuracy) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  const std::string path = WriteHeadDim128Model("hopper");
  ASSERT_FALSE(path.empty());
  ModelLoadOptions options;
  options.kv_blocks = 32;
  options.kv_block_size = 16;
  options.max_logit_rows = 300;
  DeviceSpec hopper_device = kCuda;
  hopper_device.hopper_prefill = true;
  auto hopper = testing::LoadForTest(path, options, 1, hopper_device);
  if (!HaveHopper()) {
    ASSERT_FALSE(hopper.ok());
    EXPECT_EQ(hopper.status().code(), absl::StatusCode::kFailedPrecondition) << hopper.status();
    EXPECT_NE(hopper.status().message().find("compute capability"), std::string::npos)
        << hopper.status();
    GTEST_SKIP() << "not a compute capability 9.0 device, or no sm_90a code built: the refusal "
                    "was checked";
  }
  ASSERT_TRUE(hopper.ok()) << hopper.status();
  auto portable = testing::LoadForTest(path, options, 1, kCuda);
  ASSERT_TRUE(portable.ok()) << portable.status();
  auto cpu = testing::LoadForTest(path, options, 1);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  std::mt19937 random(3);
  std::vector<int32_t> prompt(300);
  for (int32_t& t : prompt) t = 3 + static_cast<int32_t>(random() % 500);
  auto logits = [&](testing::LoadedModel& m) {
    auto out = testing::Forward(*m.runner, testing::OneSequence(*m.runner, prompt, 0, true));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *std::move(out) : std::vector<float>();
  };
  const std::vector<float> h = logits(*hopper), p = logits(*portable), c = logits(*cpu);
  ASSERT_EQ(h.size(), c.size());
  ASSERT_EQ(p.size(), c.size());
  const int64_t n = static_cast<int64_t>(c.size());
  const float hopper_error = testing::MaxAbsDiff(h.data(), c.data(), n);
  const float portable_error = testing::MaxAbsDiff(p.data(), c.data(), n);
  EXPECT_LE(hopper_error, 2.0f * portable_error + 1e-3f)
      << "hopper prefill " << hopper_error << " from the CPU, portable " << portable_error;
  std::printf("300-token prompt: largest logit difference from the CPU: hopper prefill %.4f, "
              "portable %.4f\n", hopper_error, portable_error);

  LocalExecutorOptions local;
  local.model = path;
  local.backend.device = hopper_device;
  local.kv_tokens = 16 * 400;
  auto executor = LocalExecutor::Create(local);
  ASSERT_TRUE(executor.ok()) << executor.status();
  std::vector<std::vector<int32_t>> prompts(16);
  for (auto& one : prompts) {
    one.resize(2 + random() % 350);
    for (int32_t& t : one) t = 3 + static_cast<int32_t>(random() % 500);
  }
  engine::BatchGenerateOptions sampling;
  sampling.max_new_tokens = 8;
  sampling.stop_at_eos = false;
  sampling.sampling.temperature = 0.8f;
  sampling.sampling.seed = 9;
  auto batch = engine::GenerateBatch(**executor, prompts, sampling);
  ASSERT_TRUE(batch.ok()) << batch.status();
  for (size_t i = 0; i < prompts.size(); i += 5) {
    auto alone = engine::GenerateBatch(**executor, {prompts[i]}, sampling);
    ASSERT_TRUE(alone.ok()) << alone.status();
    EXPECT_EQ(batch->sequences[i].tokens, alone->sequences[0].tokens)
        << "request " << i << " (prompt " << prompts[i].size() << ") alone and in a batch of 16";
  }
}

// The GPU keeps matrices in bf16 only: a conversion it would not make is refused at load,
// never silently ignored (the coordinator would have planned memory for it).
TEST(CudaModelTest, AConversionTheGpuWouldNotMakeIsRefused) {
  STRATA_SHARED_DATA_OR_SKIP(model_path, "fixtures/llama/model.gguf");
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  ModelLoadOptions options;
  options.weight_dtype = DType::kQ8_0;
  auto model = testing::LoadForTest(model_path.string(), options, 1, kCuda);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument) << model.status();
  EXPECT_NE(model.status().message().find("keeps every matrix in bf16"), std::string::npos)
      << model.status();
  options.weight_dtype = DType::kBF16;
  EXPECT_TRUE(testing::LoadForTest(model_path.string(), options, 1, kCuda).ok());
}

}  // namespace
}  // namespace strata

// The host sampler (worker/sampling/sampler.cc, which the CPU backend samples every row with
// and the CUDA backend the rows with bias, penalties or logprobs): one row, and a step's rows.
//
//   strata_sampler_bench [--benchmark_filter=Flat] [google benchmark flags]
//   STRATA_BENCH_THREADS=N (default: one per hardware thread) for the batch benchmark.
//
// Rows: "peaked" logits (Gaussian, sd 4: a trained model's spread; the top-p nucleus holds a
// few dozen tokens) and "flat" ones (uniform in [-1, 1): a random-weight model, or a high
// temperature; the nucleus holds most of the vocabulary).
#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "common/thread_pool.h"
#include "worker/backend/host_sampling.h"
#include "worker/sampling/sampler.h"

namespace strata {
namespace {

ThreadPool& Pool() {
  static ThreadPool* pool = [] {
    const char* env = std::getenv("STRATA_BENCH_THREADS");
    return new ThreadPool(env != nullptr ? std::atoi(env) : 0);
  }();
  return *pool;
}

std::vector<float> Logits(int64_t n, bool flat, uint32_t seed) {
  std::mt19937 random(seed);
  std::normal_distribution<float> peaked(0.0f, 4.0f);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = flat ? uniform(random) : peaked(random);
  return v;
}

// The parameter mixes: 0 greedy, 1 temperature, 2 top-p 0.9, 3 top-k 40 + top-p 0.9.
SamplingParams Mix(int64_t mix) {
  SamplingParams p;
  p.seed = 7;
  p.temperature = mix == 0 ? 0.0f : 0.8f;
  if (mix >= 2) p.top_p = 0.9f;
  if (mix == 3) p.top_k = 40;
  return p;
}

const char* MixName(int64_t mix) {
  static const char* names[] = {"greedy", "temperature", "top_p", "top_k+top_p"};
  return names[mix];
}

// Args: vocab, flat (0/1), mix.
void BM_SampleToken(benchmark::State& state) {
  const std::vector<float> logits = Logits(state.range(0), state.range(1) != 0, 1);
  const SamplingParams p = Mix(state.range(2));
  std::vector<float> scratch;
  uint32_t position = 0;
  for (auto _ : state) benchmark::DoNotOptimize(SampleToken(logits, p, position++, scratch));
  state.SetLabel(absl::StrCat(state.range(1) ? "flat " : "peaked ", MixName(state.range(2))));
}
BENCHMARK(BM_SampleToken)
    ->ArgsProduct({{32000, 128256}, {0, 1}, {0, 1, 2, 3}})
    ->Unit(benchmark::kMicrosecond);

// A decode step's rows: args batch, vocab, flat, mix.
void BM_SampleStep(benchmark::State& state) {
  const int64_t batch = state.range(0), vocab = state.range(1);
  const std::vector<float> logits = Logits(batch * vocab, state.range(2) != 0, 2);
  const SamplingParams p = Mix(state.range(3));
  std::vector<SamplingRow> rows(batch);
  for (int64_t r = 0; r < batch; ++r) {
    rows[r].params = &p;
    rows[r].position = static_cast<uint32_t>(r);
  }
  std::vector<SampledToken> out;
  for (auto _ : state) {
    const absl::Status status = SampleHostLogits(logits.data(), vocab, rows, out, &Pool());
    if (!status.ok()) state.SkipWithError(std::string(status.message()).c_str());
  }
  state.SetLabel(absl::StrCat(state.range(2) ? "flat " : "peaked ", MixName(state.range(3)), ", ",
                              Pool().num_threads(), " threads"));
}
BENCHMARK(BM_SampleStep)
    ->ArgsProduct({{32}, {32000, 128256}, {0, 1}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace strata

BENCHMARK_MAIN();

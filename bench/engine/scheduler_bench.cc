// Scheduler planning time per step with N running sequences, all decoding (the steady state of
// a busy server): Schedule() builds the step (token, position, new blocks, sampling for every
// sequence), Complete() marks it computed and commits full blocks to the prefix cache, and one
// token is appended to every sequence, as the engine does between steps.
//
//   strata_scheduler_bench [--benchmark_filter=...]
//
// Target (issue 5): < 100 us per step at 256 running sequences.
#include <memory>
#include <numeric>
#include <vector>

#include "benchmark/benchmark.h"
#include "coordinator/engine/scheduler.h"

namespace strata::engine {
namespace {

void BM_ScheduleDecodeStep(benchmark::State& state) {
  const int64_t running = state.range(0);
  constexpr int32_t kBlockSize = 16, kPrompt = 200;
  // Room for every sequence to grow by a few thousand tokens without preemption.
  BlockManager blocks(running * 256, kBlockSize, /*prefix_caching=*/true);
  SchedulerOptions options;
  options.max_seqs = static_cast<int32_t>(running);
  options.max_batched_tokens = running * kPrompt;
  Scheduler scheduler(blocks, options);
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (int64_t i = 0; i < running; ++i) {
    auto seq = std::make_unique<Sequence>();
    seq->id = static_cast<uint64_t>(i + 1);
    seq->arrival = i;
    seq->tokens.resize(kPrompt);
    std::iota(seq->tokens.begin(), seq->tokens.end(), static_cast<int32_t>(i * kPrompt));
    seq->num_prompt = kPrompt;
    seq->sampling.temperature = 0.7f;
    scheduler.Add(seq.get());
    seqs.push_back(std::move(seq));
  }
  auto step_once = [&] {
    std::optional<ScheduledStep> step = scheduler.Schedule();
    scheduler.Complete(*step);
    for (Sequence* seq : step->seqs) seq->tokens.push_back(7);
    return step->seqs.size();
  };
  step_once();  // the prefill step
  for (auto _ : state) benchmark::DoNotOptimize(step_once());
  state.counters["seqs"] = static_cast<double>(running);
}
BENCHMARK(BM_ScheduleDecodeStep)->Arg(16)->Arg(256)->Arg(1024)->Unit(benchmark::kMicrosecond)
    ->Iterations(2000);

}  // namespace
}  // namespace strata::engine

BENCHMARK_MAIN();

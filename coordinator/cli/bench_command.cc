// `strata bench memory` and `strata bench generate` (`bench cluster` lives with the cluster
// commands): the figures docs/performance.md records.
// Decode is memory-bound, so its figure is reported next to the roofline: read bandwidth
// divided by the weight bytes one decode step streams, times the sequences the step serves
// (KV reads are left out of the bound). On the CPU the bandwidth is measured here; on a GPU it
// is given (--bandwidth-gbps: strata_attention_bench's device copy figure).
#include <chrono>
#include <cstdio>
#include <numeric>

#include "absl/strings/str_format.h"
#include "common/thread_pool.h"
#include "coordinator/cli/commands.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/ops.h"
#include "coordinator/engine/batch_generate.h"

namespace strata::cli {
namespace {

struct BenchFlags {
  int threads = 0;
  int64_t memory_mib = 1024;
  std::string model;
  std::string dtype;
  int64_t prompt_tokens = 64;
  int64_t decode_tokens = 64;
  int64_t batch = 1;
  std::string device = "cpu";
  std::string kv_dtype;
  GpuFlags gpu;
  double bandwidth_gbps = 0;  // the device's; 0 on the CPU: measured
  float temperature = 0.0f;   // 0: greedy
  float top_p = 1.0f;
};

kernels::cpu::BandwidthResult MeasureBandwidth(const BenchFlags& f) {
  ThreadPool pool(f.threads);
  return kernels::cpu::MeasureMemoryBandwidth(pool, f.memory_mib << 20, 5);
}

void RunMemory(const BenchFlags& f) {
  const auto r = MeasureBandwidth(f);
  std::printf("memory: isa %s, %d threads, %lld MiB buffer: read %.2f GB/s, copy %.2f GB/s\n",
              kernels::cpu::ActiveIsa(), r.threads, static_cast<long long>(r.bytes >> 20),
              r.read_gbps, r.copy_gbps);
}

void RunGenerateBench(const BenchFlags& f) {
  CheckDeviceOrExit(f.device, f.kv_dtype);
  const std::string path = ResolveModelPath(f.model);
  std::unique_ptr<LocalExecutor> executor = LoadLocalOrExit(
      path, f.threads, f.dtype, f.batch * (f.prompt_tokens + f.decode_tokens + 1), f.device,
      f.kv_dtype, f.gpu);
  const ModelConfig& config = executor->config();
  const bool cpu = executor->runner().backend().device().kind == DeviceKind::kCpu;

  // Deterministic prompts of ordinary token ids (past the specials and byte tokens), distinct
  // per sequence so no prefix is shared.
  std::vector<std::vector<int32_t>> prompts(f.batch, std::vector<int32_t>(f.prompt_tokens));
  const int64_t span = std::max<int64_t>(1, config.vocab_size - 300);
  for (int64_t b = 0; b < f.batch; ++b) {
    for (int64_t i = 0; i < f.prompt_tokens; ++i) {
      prompts[b][i] = static_cast<int32_t>(300 + (i * 7919 + b * 104729) % span);
    }
  }
  engine::BatchGenerateOptions options;
  options.max_new_tokens = f.decode_tokens + 1;  // the first token comes from the prefill
  options.stop_at_eos = false;
  options.sampling.temperature = f.temperature;
  options.sampling.top_p = f.top_p;
  options.sampling.seed = 1;
  // Warm-up: fault in the mmap'ed weights, grow the device's scratch.
  engine::BatchGenerateOptions warm = options;
  warm.max_new_tokens = 2;
  ExitIfError(engine::GenerateBatch(*executor, prompts, warm).status());
  auto result = engine::GenerateBatch(*executor, prompts, options);
  ExitIfError(result.status());

  const double prefill_tps = f.batch * f.prompt_tokens / result->first_token_seconds;
  const double decode_tps = result->decode_tokens / result->decode_seconds;
  const double bytes = static_cast<double>(executor->runner().decode_weight_bytes());
  const double gbps = cpu ? MeasureBandwidth(f).read_gbps : f.bandwidth_gbps;
  std::printf("model: %s (%s) on %s, %.1f MB of weights streamed per decode step, batch %lld, "
              "%s\n",
              path.c_str(), f.dtype.empty() ? "as stored" : f.dtype.c_str(),
              executor->runner().backend().device().name.c_str(), bytes / 1e6,
              static_cast<long long>(f.batch),
              f.temperature > 0 ? absl::StrFormat("temperature %g, top-p %g", f.temperature, f.top_p).c_str()
                                : "greedy");
  std::printf("prefill: %lld tokens, %.1f tok/s\n",
              static_cast<long long>(f.batch * f.prompt_tokens), prefill_tps);
  std::printf("decode: %lld tokens, %.2f tok/s, %.2f GB/s of weights\n",
              static_cast<long long>(result->decode_tokens), decode_tps,
              decode_tps / f.batch * bytes / 1e9);
  if (gbps <= 0) {
    std::printf("no bandwidth given (--bandwidth-gbps): no bound\n");
    return;
  }
  const double bound_tps = gbps * 1e9 / bytes * f.batch;
  std::printf("%s bandwidth: %.2f GB/s -> weight-bound decode %.2f tok/s\n",
              cpu ? "memory read (measured)" : "device (given)", gbps, bound_tps);
  std::printf("ratio achieved / bound: %.2f\n", decode_tps / bound_tps);
}

}  // namespace

void AddBenchCommand(CLI::App& app) {
  auto flags = std::make_shared<BenchFlags>();
  CLI::App* bench = app.add_subcommand("bench", "Measure this machine and Strata on it");
  bench->require_subcommand(1);
  bench->add_option("--threads,-t", flags->threads, "CPU threads (0: all)")
      ->envname("STRATA_THREADS")->check(CLI::NonNegativeNumber)->capture_default_str();
  bench->add_option("--memory-mib", flags->memory_mib, "Buffer size of the bandwidth test")
      ->envname("STRATA_BENCH_MEMORY_MIB")->check(CLI::Range(int64_t{64}, int64_t{1} << 16))
      ->capture_default_str();

  CLI::App* memory = bench->add_subcommand("memory", "Peak memory read and copy bandwidth");
  memory->callback([flags] { RunMemory(*flags); });

  CLI::App* gen = bench->add_subcommand("generate", "Prefill and decode speed of one sequence");
  gen->add_option("--model,-m", flags->model, "Model (default: the embedded random model)")
      ->envname("STRATA_MODEL");
  gen->add_option("--dtype", flags->dtype, "Convert weights on load: f32, f16, bf16, q8_0, q4_0")
      ->envname("STRATA_DTYPE");
  gen->add_option("--prompt-tokens", flags->prompt_tokens, "Prompt length")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 16))->capture_default_str();
  gen->add_option("--decode-tokens", flags->decode_tokens, "Tokens to decode")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 16))->capture_default_str();
  gen->add_option("--batch", flags->batch, "Sequences decoded together")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}))->capture_default_str();
  gen->add_option("--device", flags->device, "Device: cpu, or cuda[:N]")
      ->envname("STRATA_DEVICE")->capture_default_str();
  gen->add_option("--kv-dtype", flags->kv_dtype, kKvDTypeHelp)->envname("STRATA_KV_DTYPE");
  AddGpuFlags(gen, &flags->gpu);
  gen->add_option("--bandwidth-gbps", flags->bandwidth_gbps,
                  "The device's memory bandwidth for the bound (a GPU's; the CPU's is measured)")
      ->check(CLI::NonNegativeNumber);
  gen->add_option("--temperature", flags->temperature, "Sample at this temperature (0: greedy)")
      ->check(CLI::Range(0.0f, 2.0f))->capture_default_str();
  gen->add_option("--top-p", flags->top_p, "Nucleus of the sampled draws")
      ->check(CLI::Range(0.01f, 1.0f))->capture_default_str();
  gen->callback([flags] { RunGenerateBench(*flags); });

  AddClusterBenchCommand(*bench);
  AddBenchServeCommand(*bench);
}

}  // namespace strata::cli

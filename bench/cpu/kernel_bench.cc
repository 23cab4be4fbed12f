// CPU kernel micro-benchmarks.
//
//   strata_kernel_bench [--benchmark_filter=MatMul] [google benchmark flags]
//   STRATA_BENCH_THREADS=N (default: one per hardware thread), STRATA_CPU_ISA=avx2|scalar.
//
// MatMul cycles through enough copies of the weights to exceed any last-level cache (at least
// 256 MiB in all), so decode figures are DRAM streaming rates, comparable with
// BM_MemoryBandwidth's read_GBps. Counters: GBps = 1e9 weight bytes streamed per second
// (bytes_per_second is the same in GiB/s), FLOPS = 2 * m * n * k per call.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "common/dtype.h"
#include "common/tensor.h"
#include "common/thread_pool.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/ops.h"

namespace strata::kernels::cpu {
namespace {

constexpr int64_t kMinWeightBytes = int64_t{256} << 20;

ThreadPool& Pool() {
  static ThreadPool* pool = [] {
    const char* env = std::getenv("STRATA_BENCH_THREADS");
    return new ThreadPool(env != nullptr ? std::atoi(env) : 0);
  }();
  return *pool;
}

// Deterministic values in [-1, 1) without the cost of a real RNG over 10^8 elements.
std::vector<float> Values(int64_t n, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t s = seed * 2654435761u + 1;
  for (float& f : v) {
    s = s * 1664525u + 1013904223u;
    f = static_cast<float>(s >> 8) / 8388608.0f - 1.0f;
  }
  return v;
}

// `copies` identical [n, k] weight matrices of `dtype`, back to back.
struct WeightSet {
  std::vector<std::byte> storage;
  std::vector<TensorView> views;
};

WeightSet MakeWeightSet(DType dtype, int64_t n, int64_t k) {
  const std::vector<float> values = Values(n * k, 1);
  const int64_t row_bytes = ElementsToBytes(dtype, k);
  const int64_t bytes = n * row_bytes;
  const int64_t copies = std::max<int64_t>(1, (kMinWeightBytes + bytes - 1) / bytes);
  WeightSet set;
  set.storage.resize(copies * bytes);
  for (int64_t r = 0; r < n; ++r) {
    QuantizeRow(dtype, values.data() + r * k, set.storage.data() + r * row_bytes, k);
  }
  for (int64_t c = 0; c < copies; ++c) {
    if (c > 0) std::memcpy(set.storage.data() + c * bytes, set.storage.data(), bytes);
    set.views.push_back(MakeView(dtype, {n, k}, set.storage.data() + c * bytes));
  }
  return set;
}

constexpr DType kDtypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0,
                             DType::kQ4_0};
// Llama-style [n, k] weight shapes (1B/TinyLlama sized: attention, MLP up, MLP down, vocab).
constexpr int64_t kShapes[][2] = {{2048, 2048}, {5632, 2048}, {2048, 5632}, {32000, 2048}};

// Args: dtype index, shape index, m.
void BM_MatMul(benchmark::State& state) {
  const DType dtype = kDtypes[state.range(0)];
  const int64_t n = kShapes[state.range(1)][0], k = kShapes[state.range(1)][1];
  const int64_t m = state.range(2);
  const WeightSet weights = MakeWeightSet(dtype, n, k);
  const std::vector<float> x = Values(m * k, 2);
  std::vector<float> y(m * n);
  ThreadPool& pool = Pool();
  size_t c = 0;
  for (auto _ : state) {
    MatMul(x.data(), m, weights.views[c], y.data(), pool);
    benchmark::DoNotOptimize(y.data());
    c = (c + 1) % weights.views.size();
  }
  const double bytes = static_cast<double>(n * ElementsToBytes(dtype, k));
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
  state.counters["GBps"] = benchmark::Counter(bytes * 1e-9 * state.iterations(),
                                              benchmark::Counter::kIsRate);
  state.counters["FLOPS"] = benchmark::Counter(2.0 * m * n * k * state.iterations(),
                                               benchmark::Counter::kIsRate);
  state.counters["threads"] = pool.num_threads();
  state.SetLabel(absl::StrCat(DTypeName(dtype), " ", n, "x", k, " m=", m, " ", ActiveIsa()));
}
BENCHMARK(BM_MatMul)
    ->ArgsProduct({{0, 1, 2, 3, 4}, {0, 1, 2, 3}, {1, 64}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// Decode attention: 8 sequences, one query each, over `context` cached tokens; Llama-3-8B-like
// heads (32 query heads, 8 KV heads, head_dim 128), block size 16.
void BM_AttentionDecode(benchmark::State& state) {
  const int64_t seqs = 8, context = state.range(0), block_size = 16;
  const int64_t blocks_per_seq = (context + block_size - 1) / block_size;
  PagedKv cache{nullptr, nullptr, seqs * blocks_per_seq, block_size, 8, 128};
  const int64_t elems = cache.num_blocks * block_size * 8 * 128;
  std::vector<float> k = Values(elems, 3), v = Values(elems, 4);
  cache.k = k.data();
  cache.v = v.data();
  std::vector<int32_t> tables(seqs * blocks_per_seq), query_start(seqs + 1),
      context_lens(seqs, static_cast<int32_t>(context));
  for (int64_t i = 0; i < seqs * blocks_per_seq; ++i) tables[i] = static_cast<int32_t>(i);
  for (int64_t s = 0; s <= seqs; ++s) query_start[s] = static_cast<int32_t>(s);
  AttentionParams params;
  params.num_heads = 32;
  params.num_kv_heads = 8;
  params.head_dim = 128;
  params.scale = 1.0f / std::sqrt(128.0f);
  const std::vector<float> q = Values(seqs * 32 * 128, 5);
  std::vector<float> out(q.size());
  for (auto _ : state) {
    PagedAttention(q.data(), cache, tables.data(), blocks_per_seq, query_start.data(),
                   context_lens.data(), seqs, params, out.data(), Pool());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(2 * elems * sizeof(float)) * state.iterations());
}
BENCHMARK(BM_AttentionDecode)->Arg(512)->Arg(2048)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_MemoryBandwidth(benchmark::State& state) {
  BandwidthResult r;
  for (auto _ : state) r = MeasureMemoryBandwidth(Pool(), int64_t{1} << 30, 5);
  state.counters["read_GBps"] = r.read_gbps;
  state.counters["copy_GBps"] = r.copy_gbps;
  state.counters["threads"] = r.threads;
}
BENCHMARK(BM_MemoryBandwidth)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace strata::kernels::cpu

BENCHMARK_MAIN();

#include "kernels/cpu/memory_bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "kernels/cpu/isa.h"

namespace strata::kernels::cpu {
namespace {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// Chunks handed out dynamically, so a thread slowed by a neighbour does not hold the pass.
constexpr int64_t kChunkFloats = int64_t{1} << 20;  // 4 MiB

// Seconds taken by one pass of fn(thread, chunk, kChunkFloats) over the `total` floats of
// `data` (a multiple of kChunkFloats), chunks shared among the pool's threads.
template <class Fn>
double TimePass(ThreadPool& pool, float* data, int64_t total, Fn&& fn) {
  std::atomic<int64_t> next{0};
  const auto start = std::chrono::steady_clock::now();
  pool.RunOnAll([&](int t) {
    for (int64_t i = next.fetch_add(kChunkFloats); i < total; i = next.fetch_add(kChunkFloats)) {
      fn(t, data + i, kChunkFloats);
    }
  });
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

BandwidthResult MeasureMemoryBandwidth(ThreadPool& pool, int64_t bytes, int repetitions) {
  const int64_t chunk_bytes = kChunkFloats * static_cast<int64_t>(sizeof(float));
  BandwidthResult result;
  result.threads = pool.num_threads();
  result.bytes = bytes / chunk_bytes * chunk_bytes;
  const int64_t total = result.bytes / static_cast<int64_t>(sizeof(float));
  if (total == 0) return result;
  std::unique_ptr<float, FreeDeleter> buffer(
      static_cast<float*>(std::aligned_alloc(4096, result.bytes)));
  float* data = buffer.get();
  TimePass(pool, data, total, [](int t, float* p, int64_t n) {
    std::fill(p, p + n, static_cast<float>(t + 1));
  });

  const IsaKernels& kernels = ActiveKernels();
  float sink[256] = {};
  double best_read = 1e30, best_copy = 1e30;
  for (int r = 0; r < std::max(1, repetitions); ++r) {
    const double read = TimePass(pool, data, total, [&](int t, float* p, int64_t n) {
      sink[t % 256] += kernels.read_sum(p, n);
    });
    const double copy = TimePass(pool, data, total, [](int, float* p, int64_t n) {
      std::memcpy(p + n / 2, p, n / 2 * sizeof(float));
    });
    best_read = std::min(best_read, read);
    best_copy = std::min(best_copy, copy);
  }
  // Keeps the sums observable so the reads cannot be optimised away.
  volatile float keep = sink[0];
  (void)keep;
  result.read_gbps = static_cast<double>(result.bytes) / best_read / 1e9;
  result.copy_gbps = static_cast<double>(result.bytes) / best_copy / 1e9;
  return result;
}

}  // namespace strata::kernels::cpu

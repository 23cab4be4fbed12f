#include "kernels/cpu/memory_bandwidth.h"

#include <algorithm>
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

// Seconds taken by one pass of fn(thread, slice_begin, slice_floats) on every pool thread.
template <class Fn>
double TimePass(ThreadPool& pool, float* data, int64_t slice_floats, Fn&& fn) {
  const auto start = std::chrono::steady_clock::now();
  pool.RunOnAll([&](int t) { fn(t, data + t * slice_floats, slice_floats); });
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

BandwidthResult MeasureMemoryBandwidth(ThreadPool& pool, int64_t bytes, int repetitions) {
  const int threads = pool.num_threads();
  // Each slice a multiple of 4 KiB so every thread's vector loop covers it exactly.
  const int64_t slice_bytes = bytes / threads / 4096 * 4096;
  const int64_t slice_floats = slice_bytes / static_cast<int64_t>(sizeof(float));
  BandwidthResult result;
  result.threads = threads;
  result.bytes = slice_bytes * threads;
  if (slice_bytes == 0) return result;
  std::unique_ptr<float, FreeDeleter> buffer(
      static_cast<float*>(std::aligned_alloc(4096, result.bytes)));
  float* data = buffer.get();
  TimePass(pool, data, slice_floats, [](int t, float* p, int64_t n) {
    std::fill(p, p + n, static_cast<float>(t + 1));
  });

  const IsaKernels& kernels = ActiveKernels();
  float sink[256] = {};
  double best_read = 1e30, best_copy = 1e30;
  for (int r = 0; r < std::max(1, repetitions); ++r) {
    best_read = std::min(best_read, TimePass(pool, data, slice_floats, [&](int t, float* p,
                                                                             int64_t n) {
      sink[t % 256] += kernels.read_sum(p, n);
    }));
    best_copy = std::min(best_copy, TimePass(pool, data, slice_floats, [](int, float* p,
                                                                          int64_t n) {
      std::memcpy(p + n / 2, p, n / 2 * sizeof(float));
    }));
  }
  // Keeps the sums observable so the reads cannot be optimised away.
  volatile float keep = sink[0];
  (void)keep;
  result.read_gbps = static_cast<double>(result.bytes) / best_read / 1e9;
  result.copy_gbps = static_cast<double>(result.bytes) / best_copy / 1e9;
  return result;
}

}  // namespace strata::kernels::cpu

// What the CUDA benchmarks share: their options, a status check, random bf16 fills, device
// buffers, median timing with CUDA events, and the device-to-device copy bandwidth they
// compare with.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace strata::bench {

#define BENCH_CHECK(expr)                                                              \
  do {                                                                                 \
    const cudaError_t err_ = (expr);                                                   \
    if (err_ != cudaSuccess) {                                                         \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr,               \
                   cudaGetErrorString(err_));                                          \
      std::exit(1);                                                                    \
    }                                                                                  \
  } while (0)

// Uniform values in [-1, 1) from a hash of the index, as bf16.
static __global__ void FillRandom(__nv_bfloat16* x, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    x[i] = __float2bfloat16(static_cast<float>(h) * (2.0f / 4294967296.0f) - 1.0f);
  }
}

struct Options {
  int iters = 20;
  double peak_tflops = 989.0;  // H100/H200 SXM dense bf16, datasheet
};

// --iters=N and --peak_tflops=T; false (after the usage line) for anything else.
inline bool ParseOptions(int argc, char** argv, Options& opt) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--iters=", 8) == 0) {
      opt.iters = std::max(1, std::atoi(argv[i] + 8));
    } else if (std::strncmp(argv[i], "--peak_tflops=", 14) == 0) {
      opt.peak_tflops = std::atof(argv[i] + 14);
    } else {
      std::fprintf(stderr, "usage: %s [--iters=N] [--peak_tflops=T]\n", argv[0]);
      return false;
    }
  }
  return true;
}

struct Buffer {
  void* ptr = nullptr;
  explicit Buffer(size_t bytes) { BENCH_CHECK(cudaMalloc(&ptr, bytes == 0 ? 16 : bytes)); }
  ~Buffer() { cudaFree(ptr); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

inline void Random(void* p, int64_t n, uint32_t seed) {
  FillRandom<<<1024, 256>>>(static_cast<__nv_bfloat16*>(p), n, seed);
  BENCH_CHECK(cudaGetLastError());
}

// The median time of `iters` runs of fn (after 3 warm-up runs), in milliseconds.
template <class Fn>
double MedianMs(int iters, Fn&& fn) {
  cudaEvent_t start, stop;
  BENCH_CHECK(cudaEventCreate(&start));
  BENCH_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) fn();
  BENCH_CHECK(cudaDeviceSynchronize());
  std::vector<float> ms(iters);
  for (float& t : ms) {
    BENCH_CHECK(cudaEventRecord(start));
    fn();
    BENCH_CHECK(cudaEventRecord(stop));
    BENCH_CHECK(cudaEventSynchronize(stop));
    BENCH_CHECK(cudaEventElapsedTime(&t, start, stop));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Device-to-device copy of 2 GiB: bytes read + written per second.
inline double CopyBandwidthGBs(int iters) {
  const size_t bytes = size_t{2} << 30;
  Buffer a(bytes), b(bytes);
  Random(a.ptr, bytes / 2, 1);
  const double ms = MedianMs(iters, [&] {
    BENCH_CHECK(cudaMemcpyAsync(b.ptr, a.ptr, bytes, cudaMemcpyDeviceToDevice));
  });
  return 2.0 * bytes / (ms * 1e-3) / 1e9;
}

// The device's name, SMs and memory, printed first; false (with a message) without a device.
inline bool PrintDevice(const char* bench) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::fprintf(stderr, "%s: no CUDA device\n", bench);
    return false;
  }
  cudaDeviceProp prop;
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, %.0f MiB\n", prop.name, prop.multiProcessorCount,
              prop.totalGlobalMem / 1048576.0);
  return true;
}

// A bench's start: its options, the device printed, the copy bandwidth measured and printed.
// Returns the exit code when it cannot run (2: a bad option, 1: no device), else 0.
inline int Start(int argc, char** argv, const char* bench, Options& opt, double& copy_gbs) {
  if (!ParseOptions(argc, argv, opt)) return 2;
  if (!PrintDevice(bench)) return 1;
  copy_gbs = CopyBandwidthGBs(opt.iters);
  std::printf("copy: %.0f GB/s (device to device, read + write)\n", copy_gbs);
  return 0;
}

}  // namespace strata::bench

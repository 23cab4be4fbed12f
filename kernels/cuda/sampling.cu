// Greedy sampling: one block per row; each thread scans a strided slice (ids ascending, so a
// strict > keeps its lowest id of a tie), then the block merges (value, id) pairs, larger value
// first and lower id on ties, and ORs the non-finite flags.
#include <cmath>

#include "kernels/cuda/elem.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace strata::kernels::cuda {
namespace {

constexpr int kThreads = 256;

struct Best {
  float value;
  int32_t id;
  bool bad;     // a NaN or +inf seen
  bool finite;  // a finite value seen
};

__device__ inline Best Merge(Best a, Best b) {
  Best m = (b.value > a.value || (b.value == a.value && b.id < a.id)) ? b : a;
  m.bad = a.bad || b.bad;
  m.finite = a.finite || b.finite;
  return m;
}

__device__ inline Best Shuffle(Best b, int offset) {
  Best o;
  o.value = __shfl_xor_sync(0xffffffffu, b.value, offset);
  o.id = __shfl_xor_sync(0xffffffffu, b.id, offset);
  o.bad = __shfl_xor_sync(0xffffffffu, static_cast<int>(b.bad), offset) != 0;
  o.finite = __shfl_xor_sync(0xffffffffu, static_cast<int>(b.finite), offset) != 0;
  return o;
}

__global__ void __launch_bounds__(kThreads) GreedyKernel(const GreedyParams p) {
  const float* row = p.logits + blockIdx.x * p.vocab;
  Best best{-INFINITY, 0x7fffffff, false, false};
  for (int64_t i = threadIdx.x; i < p.vocab; i += kThreads) {
    const float x = row[i];
    best.bad = best.bad || isnan(x) || x == INFINITY;
    best.finite = best.finite || isfinite(x);
    if (x > best.value || best.id == 0x7fffffff) {
      best.value = x;
      best.id = static_cast<int32_t>(i);
    }
  }
  for (int offset = 16; offset > 0; offset >>= 1) best = Merge(best, Shuffle(best, offset));
  __shared__ Best partial[kThreads / 32];
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = best;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) best = Merge(best, partial[w]);
    p.tokens[blockIdx.x] = best.bad || !best.finite ? p.non_finite : best.id;
  }
}

}  // namespace

absl::Status LaunchGreedy(const GreedyParams& params, void* stream) {
  if (params.logits == nullptr || params.tokens == nullptr || params.rows < 0 ||
      params.rows > 0x7fffffff || params.vocab <= 0 || params.vocab > 0x7fffffff) {
    return absl::InvalidArgumentError("LaunchGreedy: null pointer or bad rows/vocab");
  }
  if (params.rows == 0) return absl::OkStatus();
  GreedyKernel<<<static_cast<unsigned>(params.rows), kThreads, 0, AsStream(stream)>>>(params);
  return LaunchStatus("GreedyKernel");
}

}  // namespace strata::kernels::cuda

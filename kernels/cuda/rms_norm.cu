// RmsNorm: one thread block per row; each thread sums the squares of a strided slice, the
// block reduces through warp shuffles and shared memory, then every thread scales its slice.
#include "kernels/cuda/launch_util.cuh"
#include "kernels/cuda/ops.h"

namespace strata::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__device__ float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__global__ void RmsNormKernel(RmsNormParams p) {
  const float* x = p.x + blockIdx.x * p.dim;
  float* y = p.y + blockIdx.x * p.dim;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) ss += x[i] * x[i];
  __shared__ float partial[kThreads / 32];
  ss = WarpSum(ss);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    ss = WarpSum(threadIdx.x < kThreads / 32 ? partial[threadIdx.x] : 0.0f);
    if (threadIdx.x == 0) partial[0] = ss;
  }
  __syncthreads();
  const float inv = rsqrtf(partial[0] / static_cast<float>(p.dim) + p.eps);
  for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) y[i] = x[i] * inv * p.weight[i];
}

}  // namespace

absl::Status LaunchRmsNorm(const RmsNormParams& params, void* stream) {
  if (params.x == nullptr || params.weight == nullptr || params.y == nullptr ||
      params.rows < 0 || params.dim <= 0 || params.rows > 0x7fffffff) {
    return absl::InvalidArgumentError("LaunchRmsNorm: null pointer or bad rows/dim");
  }
  if (params.rows == 0) return absl::OkStatus();
  RmsNormKernel<<<static_cast<unsigned>(params.rows), kThreads, 0, AsStream(stream)>>>(params);
  return LaunchStatus("RmsNormKernel");
}

}  // namespace strata::kernels::cuda

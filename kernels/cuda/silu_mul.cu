// SiluMul: a grid-stride elementwise loop, fp32, accurate expf.
#include "kernels/cuda/launch_util.cuh"
#include "kernels/cuda/ops.h"

namespace strata::kernels::cuda {
namespace {

__global__ void SiluMulKernel(SiluMulParams p) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n;
       i += stride) {
    const float g = p.gate[i];
    p.out[i] = g / (1.0f + expf(-g)) * p.up[i];
  }
}

}  // namespace

absl::Status LaunchSiluMul(const SiluMulParams& params, void* stream) {
  if (params.gate == nullptr || params.up == nullptr || params.out == nullptr || params.n < 0) {
    return absl::InvalidArgumentError("LaunchSiluMul: null pointer or negative n");
  }
  if (params.n == 0) return absl::OkStatus();
  constexpr int kThreads = 256;
  const int64_t blocks = (params.n + kThreads - 1) / kThreads;
  SiluMulKernel<<<static_cast<unsigned>(blocks < 65536 ? blocks : 65536), kThreads, 0,
                  AsStream(stream)>>>(params);
  return LaunchStatus("SiluMulKernel");
}

}  // namespace strata::kernels::cuda

// Norm: one block per row. The fused residual add stores x + delta (rounded to the element
// type) and normalises that stored value; LayerNorm takes the mean first, then the variance
// about it (two passes over the row, as the CPU does).
#include "kernels/cuda/elem.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace strata::kernels::cuda {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void __launch_bounds__(kThreads) NormKernel(const NormParams p) {
  const int64_t row = blockIdx.x;
  T* x = static_cast<T*>(p.x) + row * p.dim;
  const T* delta = p.delta != nullptr ? static_cast<const T*>(p.delta) + row * p.dim : nullptr;
  T* y = static_cast<T*>(p.y) + row * p.dim;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < p.dim; i += kThreads) {
    float v = LoadF(x + i);
    if (delta != nullptr) {
      StoreF(x + i, v + LoadF(delta + i));
      v = LoadF(x + i);
    }
    sum += p.layer_norm ? v : v * v;
  }
  sum = BlockSum(sum);
  const float dim = static_cast<float>(p.dim);
  float mean = 0.0f, inv;
  if (p.layer_norm) {
    mean = sum / dim;
    float var = 0.0f;
    for (int64_t i = threadIdx.x; i < p.dim; i += kThreads) {
      const float d = LoadF(x + i) - mean;
      var += d * d;
    }
    inv = 1.0f / sqrtf(BlockSum(var) / dim + p.eps);
  } else {
    inv = 1.0f / sqrtf(sum / dim + p.eps);
  }
  for (int64_t i = threadIdx.x; i < p.dim; i += kThreads) {
    float v = (LoadF(x + i) - mean) * inv * p.weight[i];
    if (p.bias != nullptr) v += p.bias[i];
    StoreF(y + i, v);
  }
}

}  // namespace

absl::Status LaunchNorm(const NormParams& params, void* stream) {
  if (params.x == nullptr || params.weight == nullptr || params.y == nullptr ||
      params.rows < 0 || params.dim <= 0 || params.rows > 0x7fffffff) {
    return absl::InvalidArgumentError("LaunchNorm: null pointer or bad rows/dim");
  }
  if (params.rows == 0) return absl::OkStatus();
  return DispatchElem(params.elem, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    NormKernel<T><<<static_cast<unsigned>(params.rows), kThreads, 0, AsStream(stream)>>>(params);
    return LaunchStatus("NormKernel");
  });
}

}  // namespace strata::kernels::cuda

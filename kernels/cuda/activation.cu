// Element-wise kernels: gated activations, in-place updates (activation, add, soft cap, bias)
// and element-type conversion; grid-stride loops, f32 arithmetic, accurate math.
#include "kernels/cuda/elem.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace strata::kernels::cuda {
namespace {

#define STRATA_GRID_STRIDE(i, n)                                              \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); \
       i += int64_t{gridDim.x} * blockDim.x)

template <class T>
__global__ void GatedActKernel(const GatedActParams p) {
  const T* gate = static_cast<const T*>(p.gate);
  const T* up = static_cast<const T*>(p.up);
  T* out = static_cast<T*>(p.out);
  STRATA_GRID_STRIDE(i, p.n) { StoreF(out + i, Activate(p.act, LoadF(gate + i)) * LoadF(up + i)); }
}

template <class T>
__global__ void UpdateKernel(const UpdateParams p) {
  T* x = static_cast<T*>(p.x);
  STRATA_GRID_STRIDE(i, p.n) {
    const float v = LoadF(x + i);
    switch (p.op) {
      case UpdateParams::Op::kAct:
        StoreF(x + i, Activate(p.act, v));
        break;
      case UpdateParams::Op::kAdd:
        StoreF(x + i, v + LoadF(static_cast<const T*>(p.y) + i));
        break;
      case UpdateParams::Op::kSoftcap:
        StoreF(x + i, p.cap * tanhf(v / p.cap));
        break;
      case UpdateParams::Op::kBias:
        StoreF(x + i, v + p.bias[i % p.cols]);
        break;
    }
  }
}

template <class S, class D>
__global__ void ConvertKernel(const S* src, D* dst, int64_t n) {
  STRATA_GRID_STRIDE(i, n) { StoreF(dst + i, LoadF(src + i)); }
}

}  // namespace

absl::Status LaunchGatedAct(const GatedActParams& params, void* stream) {
  if (params.gate == nullptr || params.up == nullptr || params.out == nullptr || params.n < 0) {
    return absl::InvalidArgumentError("LaunchGatedAct: null pointer or negative n");
  }
  if (params.n == 0) return absl::OkStatus();
  return DispatchElem(params.elem, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    GatedActKernel<T><<<GridFor(params.n), 256, 0, AsStream(stream)>>>(params);
    return LaunchStatus("GatedActKernel");
  });
}

absl::Status LaunchUpdate(const UpdateParams& params, void* stream) {
  using Op = UpdateParams::Op;
  if (params.x == nullptr || params.n < 0 || (params.op == Op::kAdd && params.y == nullptr) ||
      (params.op == Op::kBias && (params.bias == nullptr || params.cols <= 0)) ||
      (params.op == Op::kSoftcap && !(params.cap > 0.0f))) {
    return absl::InvalidArgumentError(
        "LaunchUpdate: null pointer, negative n, bias without cols, or a cap not positive");
  }
  if (params.n == 0) return absl::OkStatus();
  return DispatchElem(params.elem, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    UpdateKernel<T><<<GridFor(params.n), 256, 0, AsStream(stream)>>>(params);
    return LaunchStatus("UpdateKernel");
  });
}

absl::Status LaunchConvert(const ConvertParams& params, void* stream) {
  if (params.src == nullptr || params.dst == nullptr || params.n < 0) {
    return absl::InvalidArgumentError("LaunchConvert: null pointer or negative n");
  }
  if (params.n == 0) return absl::OkStatus();
  const unsigned grid = GridFor(params.n);
  cudaStream_t s = AsStream(stream);
  const bool from_bf16 = params.src_elem == Elem::kBf16, to_bf16 = params.dst_elem == Elem::kBf16;
  if (from_bf16 && to_bf16) {
    ConvertKernel<<<grid, 256, 0, s>>>(static_cast<const __nv_bfloat16*>(params.src),
                                       static_cast<__nv_bfloat16*>(params.dst), params.n);
  } else if (from_bf16) {
    ConvertKernel<<<grid, 256, 0, s>>>(static_cast<const __nv_bfloat16*>(params.src),
                                       static_cast<float*>(params.dst), params.n);
  } else if (to_bf16) {
    ConvertKernel<<<grid, 256, 0, s>>>(static_cast<const float*>(params.src),
                                       static_cast<__nv_bfloat16*>(params.dst), params.n);
  } else {
    ConvertKernel<<<grid, 256, 0, s>>>(static_cast<const float*>(params.src),
                                       static_cast<float*>(params.dst), params.n);
  }
  return LaunchStatus("ConvertKernel");
}

}  // namespace strata::kernels::cuda

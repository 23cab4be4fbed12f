// Rope: one thread per (token, head, rotated pair). Angles are p * inv_freq[i] in f32 and
// cos/sin use the accurate (not fast-math) functions, matching the CPU path; a sequence past the
// long threshold takes the long table.
#include "kernels/cuda/elem.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace strata::kernels::cuda {
namespace {

template <class T>
__global__ void RopeKernel(const RopeParams p) {
  const int64_t half = p.rotary_dim / 2;
  const int64_t total = p.num_tokens * p.num_heads * half;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < total;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = idx % half;
    const int64_t head = idx / half;  // token * num_heads + h
    const int64_t token = head / p.num_heads;
    const bool use_long = p.long_inv_freq != nullptr &&
                          p.context_lens[p.token_seq[token]] > p.long_threshold;
    const float theta =
        static_cast<float>(p.positions[token]) * (use_long ? p.long_inv_freq : p.inv_freq)[i];
    const float mscale = use_long ? p.long_mscale : p.mscale;
    float s, c;
    sincosf(theta, &s, &c);
    c *= mscale;
    s *= mscale;
    T* v = static_cast<T*>(p.x) + head * p.head_dim;
    const int64_t a = p.interleaved ? 2 * i : i;
    const int64_t b = p.interleaved ? 2 * i + 1 : i + half;
    const float x0 = LoadF(v + a), x1 = LoadF(v + b);
    StoreF(v + a, x0 * c - x1 * s);
    StoreF(v + b, x0 * s + x1 * c);
  }
}

}  // namespace

absl::Status LaunchRope(const RopeParams& params, void* stream) {
  if (params.x == nullptr || params.positions == nullptr || params.inv_freq == nullptr ||
      params.rotary_dim <= 0 || params.rotary_dim % 2 != 0 ||
      params.rotary_dim > params.head_dim || params.num_tokens < 0 || params.num_heads < 0 ||
      (params.long_inv_freq != nullptr &&
       (params.token_seq == nullptr || params.context_lens == nullptr))) {
    return absl::InvalidArgumentError(
        "LaunchRope: null pointer, rotary_dim not even and in (0, head_dim], or a long table "
        "without token_seq/context_lens");
  }
  const int64_t total = params.num_tokens * params.num_heads * (params.rotary_dim / 2);
  if (total == 0) return absl::OkStatus();
  return DispatchElem(params.elem, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    RopeKernel<T><<<GridFor(total), 256, 0, AsStream(stream)>>>(params);
    return LaunchStatus("RopeKernel");
  });
}

}  // namespace strata::kernels::cuda

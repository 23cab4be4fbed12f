// Rope: one thread per (token, head, rotated pair). Angles are p * inv_freq[i] in fp32 and
// cos/sin use the accurate (not fast-math) functions, matching the CPU path.
#include "kernels/cuda/launch_util.cuh"
#include "kernels/cuda/ops.h"

namespace strata::kernels::cuda {
namespace {

__global__ void RopeKernel(RopeParams p) {
  const int64_t half = p.rotary_dim / 2;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= p.num_tokens * p.num_heads * half) return;
  const int64_t i = idx % half;
  const int64_t head = idx / half;  // token * num_heads + h
  const int64_t token = head / p.num_heads;
  const float theta = static_cast<float>(p.positions[token]) * p.inv_freq[i];
  float s, c;
  sincosf(theta, &s, &c);
  c *= p.mscale;
  s *= p.mscale;
  float* v = p.x + head * p.head_dim;
  const int64_t a = p.interleaved ? 2 * i : i;
  const int64_t b = p.interleaved ? 2 * i + 1 : i + half;
  const float x0 = v[a], x1 = v[b];
  v[a] = x0 * c - x1 * s;
  v[b] = x0 * s + x1 * c;
}

}  // namespace

absl::Status LaunchRope(const RopeParams& params, void* stream) {
  if (params.x == nullptr || params.positions == nullptr || params.inv_freq == nullptr ||
      params.rotary_dim <= 0 || params.rotary_dim % 2 != 0 ||
      params.rotary_dim > params.head_dim || params.num_tokens < 0 || params.num_heads < 0) {
    return absl::InvalidArgumentError(
        "LaunchRope: null pointer, or rotary_dim not even and in (0, head_dim]");
  }
  const int64_t total = params.num_tokens * params.num_heads * (params.rotary_dim / 2);
  if (total == 0) return absl::OkStatus();
  constexpr int kThreads = 256;
  const auto blocks = static_cast<unsigned>((total + kThreads - 1) / kThreads);
  RopeKernel<<<blocks, kThreads, 0, AsStream(stream)>>>(params);
  return LaunchStatus("RopeKernel");
}

}  // namespace strata::kernels::cuda

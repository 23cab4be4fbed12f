// CUDA operators (fp32) behind plain parameter structs. This header has no CUDA types, so CPU
// code may include it; device pointers are raw pointers and streams are passed as `void*`
// (a cudaStream_t, nullptr for the default stream). Launches are asynchronous on that stream;
// the returned Status covers argument validation and launch errors only.
#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace strata::kernels::cuda {

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight.   y may be x.
struct RmsNormParams {
  const float* x = nullptr;       // [rows, dim], device
  const float* weight = nullptr;  // [dim], device
  float* y = nullptr;             // [rows, dim], device
  int64_t rows = 0;
  int64_t dim = 0;
  float eps = 1e-5f;
};
absl::Status LaunchRmsNorm(const RmsNormParams& params, void* stream);

// Rotates the first rotary_dim dims of every head in place, as cpu::ApplyRope: the angle of
// pair i at position p is p * inv_freq[i] in fp32; cos/sin are scaled by mscale.
struct RopeParams {
  float* x = nullptr;                  // [num_tokens, num_heads, head_dim], device
  const int32_t* positions = nullptr;  // [num_tokens], device
  const float* inv_freq = nullptr;     // [rotary_dim / 2], device
  int64_t num_tokens = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  int64_t rotary_dim = 0;
  bool interleaved = false;  // false: pairs (i, i + rotary_dim/2) (HF); true: (2i, 2i + 1)
  float mscale = 1.0f;
};
absl::Status LaunchRope(const RopeParams& params, void* stream);

// out[i] = silu(gate[i]) * up[i].   out may alias gate.
struct SiluMulParams {
  const float* gate = nullptr;  // [n], device
  const float* up = nullptr;    // [n], device
  float* out = nullptr;         // [n], device
  int64_t n = 0;
};
absl::Status LaunchSiluMul(const SiluMulParams& params, void* stream);

}  // namespace strata::kernels::cuda

// Loads and stores of activations as f32, by element type, and the shared activation
// functions (the CPU's formulas, accurate math).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <type_traits>

#include "kernels/cuda/ops.h"

namespace strata::kernels::cuda {

__device__ inline float LoadF(const float* p) { return *p; }
__device__ inline float LoadF(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ inline void StoreF(float* p, float v) { *p = v; }
__device__ inline void StoreF(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

__device__ inline float Activate(Act act, float x) {
  switch (act) {
    case Act::kSilu:
      return x / (1.0f + expf(-x));
    case Act::kGeluTanh: {
      const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
      return 0.5f * x * (1.0f + tanhf(inner));
    }
    case Act::kGeluErf:
      return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
  }
  return x;
}

// Calls Fn.template operator()<T>() with T the element type `elem` names.
template <class Fn>
absl::Status DispatchElem(Elem elem, Fn&& fn) {
  if (elem == Elem::kBf16) return fn(static_cast<__nv_bfloat16*>(nullptr));
  return fn(static_cast<float*>(nullptr));
}

// A grid of at most 65535 x 256-thread blocks for n elements (kernels loop grid-stride).
inline unsigned GridFor(int64_t n, int threads = 256) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65535 ? blocks : 65535);
}

}  // namespace strata::kernels::cuda

namespace strata::kernels::cuda {

// The sum of v over the block (blockDim.x a multiple of 32, at most 1024), returned to every
// thread; the warps' partial sums are added in warp order (deterministic).
__device__ inline float BlockSum(float v) {
  __shared__ float partial[32];
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0.0f;
  for (unsigned w = 0; w < blockDim.x / 32; ++w) total += partial[w];
  __syncthreads();  // partial is reused by the next call
  return total;
}

}  // namespace strata::kernels::cuda

// The cheap elementwise and per-row ops of ops.h. Vector work goes through the ISA table;
// rope computes each token's cos/sin once and applies them to every head.
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/ops.h"

namespace strata::kernels::cpu {

void EmbeddingLookup(const TensorView& table, const int32_t* tokens, int64_t num_tokens,
                     float* out) {
  const int64_t dim = table.Cols();
  for (int64_t i = 0; i < num_tokens; ++i) {
    DequantizeRow(table.dtype, table.Row(tokens[i]), out + i * dim, dim);
  }
}

void RmsNorm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y) {
  const IsaKernels& kernels = ActiveKernels();
  for (int64_t r = 0; r < rows; ++r) {
    const float ss = kernels.sum_squares(x + r * dim, dim);
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    kernels.scale_mul(x + r * dim, inv, w, dim, y + r * dim);
  }
}

void ApplyRope(float* x, int64_t num_tokens, int64_t num_heads, int64_t head_dim,
               const int32_t* positions, const float* inv_freq, int64_t rotary_dim,
               RopeLayout layout, float mscale) {
  const int64_t half = rotary_dim / 2;
  std::vector<float> cos_sin(2 * half);  // [cos..., sin...] of the current token
  for (int64_t t = 0; t < num_tokens; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const float theta = static_cast<float>(positions[t]) * inv_freq[i];
      cos_sin[i] = std::cos(theta) * mscale;
      cos_sin[half + i] = std::sin(theta) * mscale;
    }
    for (int64_t h = 0; h < num_heads; ++h) {
      float* v = x + (t * num_heads + h) * head_dim;
      // Pair i is (a, a + stride): (i, i + half) for kHalfSplit, (2i, 2i + 1) for kInterleaved.
      const int64_t step = layout == RopeLayout::kHalfSplit ? 1 : 2;
      const int64_t stride = layout == RopeLayout::kHalfSplit ? half : 1;
      for (int64_t i = 0; i < half; ++i) {
        const float c = cos_sin[i], s = cos_sin[half + i];
        float* a = v + i * step;
        const float x0 = a[0], x1 = a[stride];
        a[0] = x0 * c - x1 * s;
        a[stride] = x0 * s + x1 * c;
      }
    }
  }
}

void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  ActiveKernels().silu_mul(gate, up, n, out);
}

void AddInPlace(float* x, const float* y, int64_t n) { ActiveKernels().add(x, y, n); }

void WriteKv(const PagedKv& cache, const float* k, const float* v, const int32_t* slot_mapping,
             int64_t num_tokens) {
  const int64_t k_row = cache.KRow(), v_row = cache.VRow();
  for (int64_t t = 0; t < num_tokens; ++t) {
    std::memcpy(cache.k + slot_mapping[t] * k_row, k + t * k_row, k_row * sizeof(float));
    if (cache.v != cache.k) {
      std::memcpy(cache.v + slot_mapping[t] * v_row, v + t * v_row, v_row * sizeof(float));
    }
  }
}

float Gelu(float x, bool tanh_approximation) {
  if (tanh_approximation) {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
  }
  return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f));
}

void GeluMul(const float* gate, const float* up, int64_t n, bool tanh_approximation, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = Gelu(gate[i], tanh_approximation) * up[i];
}

void GeluInPlace(float* x, int64_t n, bool tanh_approximation) {
  for (int64_t i = 0; i < n; ++i) x[i] = Gelu(x[i], tanh_approximation);
}

void SiluInPlace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
}

void LayerNorm(const float* x, const float* w, const float* b, int64_t rows, int64_t dim,
               float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    float mean = 0.0f;
    for (int64_t i = 0; i < dim; ++i) mean += xr[i];
    mean /= static_cast<float>(dim);
    float var = 0.0f;
    for (int64_t i = 0; i < dim; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    const float inv = 1.0f / std::sqrt(var / static_cast<float>(dim) + eps);
    for (int64_t i = 0; i < dim; ++i) {
      yr[i] = (xr[i] - mean) * inv * w[i] + (b != nullptr ? b[i] : 0.0f);
    }
  }
}

void AddBias(float* y, const float* bias, int64_t rows, int64_t n) {
  const IsaKernels& kernels = ActiveKernels();
  for (int64_t r = 0; r < rows; ++r) kernels.add(y + r * n, bias, n);
}

void Softcap(float* x, int64_t n, float cap) {
  const float inv = 1.0f / cap;
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] * inv);
}

}  // namespace strata::kernels::cpu

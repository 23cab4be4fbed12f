#include "kernels/cpu/reference_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace strata::kernels::cpu::reference {
namespace {

float QuantBlockDot(DType dtype, const std::byte* w_row, const BlockQ8_0& xb, int64_t b) {
  int32_t dot = 0;
  float dw;
  if (dtype == DType::kQ8_0) {
    const BlockQ8_0& wb = reinterpret_cast<const BlockQ8_0*>(w_row)[b];
    for (int j = 0; j < 32; ++j) dot += wb.q[j] * xb.q[j];
    dw = F16ToF32(wb.d);
  } else {
    const BlockQ4_0& wb = reinterpret_cast<const BlockQ4_0*>(w_row)[b];
    for (int j = 0; j < 16; ++j) {
      dot += ((wb.q[j] & 15) - 8) * xb.q[j];
      dot += ((wb.q[j] >> 4) - 8) * xb.q[j + 16];
    }
    dw = F16ToF32(wb.d);
  }
  return static_cast<float>(dot) * (dw * F16ToF32(xb.d));
}

}  // namespace

void MatMul(const float* x, int64_t m, const TensorView& w, float* y) {
  const int64_t n = w.Rows();
  const int64_t k = w.Cols();
  const bool quantized = w.dtype == DType::kQ8_0 || w.dtype == DType::kQ4_0;
  std::vector<float> w_row(k);
  std::vector<BlockQ8_0> xq(k / 32);
  for (int64_t i = 0; i < m; ++i) {
    if (quantized) QuantizeRow(DType::kQ8_0, x + i * k, xq.data(), k);
    for (int64_t j = 0; j < n; ++j) {
      float sum = 0.0f;
      if (quantized) {
        for (int64_t b = 0; b < k / 32; ++b) sum += QuantBlockDot(w.dtype, w.Row(j), xq[b], b);
      } else {
        DequantizeRow(w.dtype, w.Row(j), w_row.data(), k);
        for (int64_t kk = 0; kk < k; ++kk) sum += x[i * k + kk] * w_row[kk];
      }
      y[i * n + j] = sum;
    }
  }
}

void EmbeddingLookup(const TensorView& table, const int32_t* tokens, int64_t num_tokens,
                     float* out) {
  const int64_t dim = table.Cols();
  for (int64_t i = 0; i < num_tokens; ++i) {
    DequantizeRow(table.dtype, table.Row(tokens[i]), out + i * dim, dim);
  }
}

void RmsNorm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    float ss = 0.0f;
    for (int64_t i = 0; i < dim; ++i) ss += x[r * dim + i] * x[r * dim + i];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    for (int64_t i = 0; i < dim; ++i) y[r * dim + i] = x[r * dim + i] * inv * w[i];
  }
}

void ApplyRope(float* x, int64_t num_tokens, int64_t num_heads, int64_t head_dim,
               const int32_t* positions, const float* inv_freq, int64_t rotary_dim,
               RopeLayout layout, float mscale) {
  const int64_t half = rotary_dim / 2;
  for (int64_t t = 0; t < num_tokens; ++t) {
    for (int64_t h = 0; h < num_heads; ++h) {
      float* v = x + (t * num_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float theta = static_cast<float>(positions[t]) * inv_freq[i];
        const float c = std::cos(theta) * mscale;
        const float s = std::sin(theta) * mscale;
        const int64_t a = layout == RopeLayout::kHalfSplit ? i : 2 * i;
        const int64_t b = layout == RopeLayout::kHalfSplit ? i + half : 2 * i + 1;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * c - x1 * s;
        v[b] = x0 * s + x1 * c;
      }
    }
  }
}

void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void AddInPlace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void WriteKv(const PagedKv& cache, const float* k, const float* v, const int32_t* slot_mapping,
             int64_t num_tokens) {
  const int64_t k_row = cache.KRow(), v_row = cache.VRow();
  for (int64_t t = 0; t < num_tokens; ++t) {
    for (int64_t i = 0; i < k_row; ++i) cache.k[slot_mapping[t] * k_row + i] = k[t * k_row + i];
    if (cache.v == cache.k) continue;
    for (int64_t i = 0; i < v_row; ++i) cache.v[slot_mapping[t] * v_row + i] = v[t * v_row + i];
  }
}

void PagedAttention(const float* q, const PagedKv& cache, const int32_t* block_tables,
                    int64_t max_blocks_per_seq, const int32_t* query_start,
                    const int32_t* context_lens, int64_t num_seqs, const AttentionParams& p,
                    float* out) {
  const int64_t d = p.head_dim;
  const int64_t group = p.num_heads / p.num_kv_heads;
  std::vector<float> scores;
  for (int64_t s = 0; s < num_seqs; ++s) {
    const int64_t n_q = query_start[s + 1] - query_start[s];
    for (int64_t j = 0; j < n_q; ++j) {
      const int64_t token = query_start[s] + j;
      const int64_t pos = context_lens[s] - n_q + j;
      const int64_t first =
          p.sliding_window > 0 ? std::max<int64_t>(0, pos - p.sliding_window + 1) : 0;
      for (int64_t h = 0; h < p.num_heads; ++h) {
        const float* qv = q + (token * p.num_heads + h) * d;
        const int64_t kvh = h / group;
        const int64_t dv = cache.VDim();
        auto slot = [&](int64_t t) {  // the token's slot in the cache
          const int64_t block = block_tables[s * max_blocks_per_seq + t / cache.block_size];
          return block * cache.block_size + t % cache.block_size;
        };
        auto k_at = [&](int64_t t) { return cache.k + slot(t) * cache.KRow() + kvh * d; };
        auto v_at = [&](int64_t t) {
          return cache.v + slot(t) * cache.VRow() + kvh * cache.VHeadStride();
        };
        scores.assign(pos + 1 - first, 0.0f);
        float max_score = -INFINITY;
        for (int64_t t = first; t <= pos; ++t) {
          float dot = 0.0f;
          for (int64_t i = 0; i < d; ++i) dot += qv[i] * k_at(t)[i];
          float score = dot * p.scale;
          if (p.softcap > 0.0f) score = p.softcap * std::tanh(score / p.softcap);
          scores[t - first] = score;
          max_score = std::max(max_score, score);
        }
        float denom = 0.0f;
        for (float& sc : scores) {
          sc = std::exp(sc - max_score);
          denom += sc;
        }
        float* o = out + (token * p.num_heads + h) * dv;
        std::fill(o, o + dv, 0.0f);
        for (int64_t t = first; t <= pos; ++t) {
          const float prob = scores[t - first] / denom;
          for (int64_t i = 0; i < dv; ++i) o[i] += prob * v_at(t)[i];
        }
      }
    }
  }
}

}  // namespace strata::kernels::cpu::reference

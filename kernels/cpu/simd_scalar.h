// Portable "vector of one float" traits for kernels_impl.h: the fallback for CPUs without AVX2.
// Only kernels_scalar.cc includes this file.
#pragma once

#include <cstdint>
#include <cstring>

#include "common/dtype.h"

namespace strata::kernels::cpu {
namespace {

struct ScalarTraits {
  static constexpr const char* kName = "scalar";
  static constexpr int kW = 1;   // floats per F
  static constexpr int kMr = 4;  // x rows per matmul tile
  static constexpr int kNr = 2;   // weight rows per float matmul tile
  static constexpr int kQNr = 2;  // weight rows per quantized matmul tile

  using F = float;
  static F Zero() { return 0.0f; }
  static F Set1(float v) { return v; }
  static F Load(const float* p) { return *p; }
  static void Store(float* p, F v) { *p = v; }
  static F LoadF16(const uint16_t* p) { return F16ToF32(*p); }
  static F LoadBF16(const uint16_t* p) { return BF16ToF32(*p); }
  static F Add(F a, F b) { return a + b; }
  static F Mul(F a, F b) { return a * b; }
  static F Fma(F a, F b, F c) { return a * b + c; }
  static float Sum(F v) { return v; }
  static float HalfToFloat(uint16_t h) { return F16ToF32(h); }

  // A 32-weight block as signed bytes.
  struct QW {
    int8_t v[32];
  };
  using QF = float;
  static QW LoadQ8(const BlockQ8_0* b) {
    QW w;
    std::memcpy(w.v, b->q, 32);
    return w;
  }
  // The raw nibbles (0..15); BlockDotQ4 applies the -8 offset through xcorr.
  static QW LoadQ4(const BlockQ4_0* b) {
    QW w;
    for (int j = 0; j < 16; ++j) {
      w.v[j] = static_cast<int8_t>(b->q[j] & 15);
      w.v[j + 16] = static_cast<int8_t>(b->q[j] >> 4);
    }
    return w;
  }
  static QF BlockDotQ4(const QW& w, const int8_t* x, const int32_t* corr) {
    int32_t s = 0;
    for (int j = 0; j < 8; ++j) s += corr[j];
    for (int j = 0; j < 32; ++j) s += w.v[j] * x[j];
    return static_cast<float>(s);
  }
  static QF BlockDot(const QW& w, const int8_t* x) {
    int32_t s = 0;
    for (int j = 0; j < 32; ++j) s += w.v[j] * x[j];
    return static_cast<float>(s);
  }
  static void QuantizeQ8(const float* x, int64_t k, BlockQ8_0* out) {
    QuantizeRow(DType::kQ8_0, x, out, k);
  }
  static QF QAdd(QF a, QF b) { return a + b; }
  static QF QZero() { return 0.0f; }
  static QF QFma(QF d, float s, QF acc) { return d * s + acc; }
  static float QSum(QF v) { return v; }
};

}  // namespace
}  // namespace strata::kernels::cpu

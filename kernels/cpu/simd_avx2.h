// AVX2 + FMA + F16C traits for kernels_impl.h (8 floats per vector). Included only by
// translation units compiled with at least -mavx2 -mfma -mf16c: kernels_avx2.cc, and
// kernels_avx512.cc, which reuses the 256-bit quantized-block helpers.
//
// Everything sits in an anonymous namespace so no inline function compiled with these flags
// can be picked by the linker for a translation unit compiled without them.
#pragma once

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "simd_avx2.h needs -mavx2 -mfma -mf16c"
#endif

#include <immintrin.h>

#include <cstdint>

#include "common/dtype.h"

namespace strata::kernels::cpu {
namespace {

// Quantized-block helpers shared by the AVX2 and AVX-512 traits: a 32-weight block lives in
// one __m256i of signed bytes, its products are accumulated in a __m256 of 8 partial sums.
struct Avx2QuantBase {
  using QF = __m256;
  // Weights as signed bytes plus their absolute values (the unsigned operand of maddubs or
  // vpdpbusd); the activations take the weights' signs (the "sign trick").
  struct QW {
    __m256i w;
    __m256i abs_w;
  };
  static QW MakeQW(__m256i w) { return {w, _mm256_sign_epi8(w, w)}; }
  static QW LoadQ8(const BlockQ8_0* b) {
    return MakeQW(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->q)));
  }
  // The raw nibbles (0..15) as unsigned bytes; BlockDotQ4 applies the -8 offset through the
  // activations' precomputed correction, so no sign trick is needed.
  using Q4W = __m256i;
  static Q4W LoadQ4(const BlockQ4_0* b) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->q));
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
    return _mm256_and_si256(both, _mm256_set1_epi8(15));
  }
  static __m256i LoadCorr(const int32_t* corr) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corr));
  }
  static __m256i LoadX(const int8_t* x) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  }
  static QF QZero() { return _mm256_setzero_ps(); }
  static QF QFma(QF d, float s, QF acc) { return _mm256_fmadd_ps(d, _mm256_set1_ps(s), acc); }
  static float QSum(QF v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float HalfToFloat(uint16_t h) { return _cvtsh_ss(h); }
};

struct Avx2Traits : Avx2QuantBase {
  static constexpr const char* kName = "avx2";
  static constexpr int kW = 8;
  static constexpr int kMr = 4;
  static constexpr int kNr = 2;

  using F = __m256;
  static F Zero() { return _mm256_setzero_ps(); }
  static F Set1(float v) { return _mm256_set1_ps(v); }
  static F Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F LoadF16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static F LoadBF16(const uint16_t* p) {
    const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
  }
  static F Add(F a, F b) { return _mm256_add_ps(a, b); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static float Sum(F v) { return QSum(v); }

  // sum_j w[j] * x[j] of one block as 8 float partial sums: |w| (u8) * sign(x, w) (s8) summed
  // pairwise into int16 (no overflow: 2 * 127 * 127 < 32768), then into int32.
  static QF BlockDot(const QW& w, const int8_t* x) {
    const __m256i p16 = _mm256_maddubs_epi16(w.abs_w, _mm256_sign_epi8(LoadX(x), w.w));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
  }
  // Nibbles (u8, <= 15) times x (s8): pair sums stay far inside int16.
  static QF BlockDotQ4(Q4W w, const int8_t* x, const int32_t* corr) {
    const __m256i p16 = _mm256_maddubs_epi16(w, LoadX(x));
    const __m256i p32 = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
    return _mm256_cvtepi32_ps(_mm256_add_epi32(p32, LoadCorr(corr)));
  }
};

}  // namespace
}  // namespace strata::kernels::cpu

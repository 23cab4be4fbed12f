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
  static QF QAdd(QF a, QF b) { return _mm256_add_ps(a, b); }
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

// std::roundf (half away from zero) of integral-or-not v, exactly: truncate, then step away
// from zero when the dropped fraction (exact in float) is at least one half.
inline __m256 RoundHalfAway(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
  const __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
  const __m256 away = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 step = _mm256_and_ps(away, _mm256_or_ps(_mm256_set1_ps(1.0f), sign));
  return _mm256_add_ps(t, step);
}

struct Avx2Traits : Avx2QuantBase {
  static constexpr const char* kName = "avx2";
  static constexpr int kW = 8;
  static constexpr int kMr = 4;
  static constexpr int kNr = 2;
  static constexpr int kQNr = 2;

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
  // QuantizeRow(kQ8_0) bit for bit: d = amax / 127 rounded to f16, q = roundf(x / d).
  static void QuantizeQ8(const float* x, int64_t k, BlockQ8_0* out) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t b = 0; b < k / 32; ++b, x += 32) {
      __m256 v[4];
      __m256 amax = _mm256_setzero_ps();
      for (int j = 0; j < 4; ++j) {
        v[j] = _mm256_loadu_ps(x + 8 * j);
        amax = _mm256_max_ps(amax, _mm256_and_ps(v[j], abs_mask));
      }
      __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
      m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
      m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
      const float d = _mm_cvtss_f32(m4) / 127.0f;
      const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
      out[b].d = static_cast<uint16_t>(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
      __m256i q[4];
      for (int j = 0; j < 4; ++j) q[j] = _mm256_cvtps_epi32(RoundHalfAway(_mm256_mul_ps(v[j], id)));
      // |q| <= 127, so the saturating packs are exact; the permute undoes their lane order.
      const __m256i q16a = _mm256_packs_epi32(q[0], q[1]);
      const __m256i q16b = _mm256_packs_epi32(q[2], q[3]);
      const __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q16a, q16b),
                                                     _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].q), q8);
    }
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

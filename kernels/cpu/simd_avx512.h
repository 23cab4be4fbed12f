// AVX-512 (F, BW, VL, VNNI) traits for kernels_impl.h: 16 floats per vector for the float
// kernels; quantized blocks keep the 256-bit layout of simd_avx2.h but use vpdpbusd.
// Included only by kernels_avx512.cc.
#pragma once

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) || \
    !defined(__AVX512VNNI__)
#error "simd_avx512.h needs -mavx512f -mavx512bw -mavx512vl -mavx512vnni"
#endif

#include "kernels/cpu/simd_avx2.h"

namespace strata::kernels::cpu {
namespace {

// As the 256-bit RoundHalfAway in simd_avx2.h.
inline __m512 RoundHalfAway(__m512 v) {
  const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __mmask16 away =
      _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512 step = _mm512_castsi512_ps(_mm512_or_si512(
      _mm512_castps_si512(_mm512_set1_ps(1.0f)),
      _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN))));
  return _mm512_mask_add_ps(t, away, t, step);
}

struct Avx512Traits : Avx2QuantBase {
  static constexpr const char* kName = "avx512";
  static constexpr int kW = 16;
  static constexpr int kMr = 4;
  static constexpr int kNr = 4;
  static constexpr int kQNr = 4;

  using F = __m512;
  static F Zero() { return _mm512_setzero_ps(); }
  static F Set1(float v) { return _mm512_set1_ps(v); }
  static F Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F LoadF16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static F LoadBF16(const uint16_t* p) {
    const __m512i h =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
  }
  static F Add(F a, F b) { return _mm512_add_ps(a, b); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static float Sum(F v) { return _mm512_reduce_add_ps(v); }

  // |w| (u8) * sign(x, w) (s8) summed four at a time into int32 by vpdpbusd.
  static QF BlockDot(const QW& w, const int8_t* x) {
    const __m256i p32 =
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), w.abs_w, _mm256_sign_epi8(LoadX(x), w.w));
    return _mm256_cvtepi32_ps(p32);
  }
  // QuantizeRow(kQ8_0) bit for bit, a block per two vectors (see Avx2Traits::QuantizeQ8).
  static void QuantizeQ8(const float* x, int64_t k, BlockQ8_0* out) {
    for (int64_t b = 0; b < k / 32; ++b, x += 32) {
      const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
      const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
      const float d = amax / 127.0f;
      const __m512 id = _mm512_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
      out[b].d = static_cast<uint16_t>(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
      const __m512i q0 = _mm512_cvtps_epi32(RoundHalfAway(_mm512_mul_ps(v0, id)));
      const __m512i q1 = _mm512_cvtps_epi32(RoundHalfAway(_mm512_mul_ps(v1, id)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b].q), _mm512_cvtepi32_epi8(q0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b].q + 16), _mm512_cvtepi32_epi8(q1));
    }
  }

  // Nibbles (u8) times x (s8) accumulated onto the -8 * sum(x) correction.
  static QF BlockDotQ4(Q4W w, const int8_t* x, const int32_t* corr) {
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(LoadCorr(corr), w, LoadX(x)));
  }
};

}  // namespace
}  // namespace strata::kernels::cpu

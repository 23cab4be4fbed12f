#include "common/dtype.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(DTypeTest, F16RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(F32ToF16(f), h) << h;
  }
}

TEST(DTypeTest, F16RoundsToNearestEven) {
  EXPECT_EQ(F32ToF16(1.0f), 0x3c00);
  EXPECT_EQ(F32ToF16(1.0f + 0x1.0p-11f), 0x3c00);        // tie -> even
  EXPECT_EQ(F32ToF16(1.0f + 3 * 0x1.0p-11f), 0x3c02);    // tie -> even (up)
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);                 // overflow -> inf
  EXPECT_EQ(F32ToF16(0x1.0p-25f), 0x0000);               // half of the smallest subnormal
  EXPECT_EQ(F32ToF16(0x1.8p-25f), 0x0001);
}

TEST(DTypeTest, Bf16RoundTripAndRounding) {
  EXPECT_EQ(F32ToBF16(1.0f), 0x3f80);
  EXPECT_EQ(BF16ToF32(0x3f80), 1.0f);
  EXPECT_EQ(F32ToBF16(1.0f + 0x1.0p-8f), 0x3f80);  // tie -> even
  EXPECT_TRUE(std::isnan(BF16ToF32(F32ToBF16(std::nanf("")))));
}

TEST(DTypeTest, QuantizedRowsDecodeWithinTheirStep) {
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[i] = std::sin(0.37f * i) * (i < 32 ? 1.0f : 100.0f);
  for (DType t : {DType::kQ8_0, DType::kQ4_0}) {
    std::vector<std::byte> q(ElementsToBytes(t, 64));
    QuantizeRow(t, x.data(), q.data(), 64);
    std::vector<float> y(64);
    DequantizeRow(t, q.data(), y.data(), 64);
    for (int b = 0; b < 2; ++b) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
      // q8_0 rounds to the nearest of 255 steps; q4_0 has 16 levels (-8..7) x amax/8, so the
      // side opposite the largest value clamps at 7 steps and may lose one whole step.
      const float step = amax / (t == DType::kQ8_0 ? 127.0f : 8.0f);
      const float bound = t == DType::kQ8_0 ? 0.51f * step : 1.01f * step;
      for (int i = 0; i < 32; ++i) {
        EXPECT_LE(std::fabs(y[b * 32 + i] - x[b * 32 + i]), bound + 1e-3f * amax)
            << DTypeName(t) << " " << b * 32 + i;
      }
    }
  }
}

// E4M3 by its definition: every code decodes to (-1)^s (1 + m/8) 2^(e-7) (subnormals m 2^-9),
// S.1111.111 is NaN, and encoding any float gives the nearest code (ties to the even
// mantissa), saturating at 448.
TEST(DTypeTest, F8E4M3DecodesEveryCodeAndRoundsToNearestEven) {
  std::vector<float> finite;  // the non-negative finite values, ascending
  for (int c = 0; c < 256; ++c) {
    const float v = F8E4M3ToF32(static_cast<uint8_t>(c));
    const int e = (c >> 3) & 15, m = c & 7;
    if (e == 15 && m == 7) {
      EXPECT_TRUE(std::isnan(v)) << c;
      EXPECT_EQ(F32ToF8E4M3(v) & 0x7f, 0x7f) << c;
      continue;
    }
    const double want = (c & 0x80 ? -1.0 : 1.0) *
                        (e == 0 ? m * std::pow(2.0, -9) : (1.0 + m / 8.0) * std::pow(2.0, e - 7));
    EXPECT_EQ(v, static_cast<float>(want)) << c;
    if (!(c == 0x80)) EXPECT_EQ(F32ToF8E4M3(v), c) << "code " << c << " value " << v;  // -0 too
    if (c < 0x80) finite.push_back(v);
  }
  EXPECT_EQ(finite.back(), kF8E4M3Max);
  EXPECT_EQ(F32ToF8E4M3(-0.0f), 0x80);
  // Between neighbours: below the midpoint goes down, above goes up, on it to the even code.
  for (size_t i = 0; i + 1 < finite.size(); ++i) {
    const float lo = finite[i], hi = finite[i + 1], mid = (lo + hi) / 2;
    EXPECT_EQ(F32ToF8E4M3(std::nextafter(mid, lo)), i) << lo;
    EXPECT_EQ(F32ToF8E4M3(std::nextafter(mid, hi)), i + 1) << lo;
    EXPECT_EQ(F32ToF8E4M3(mid), i % 2 == 0 ? i : i + 1) << lo;
    EXPECT_EQ(F32ToF8E4M3(-mid), 0x80 | (i % 2 == 0 ? i : i + 1)) << lo;
  }
  for (float big : {448.5f, 464.0f, 1e6f, INFINITY}) {
    EXPECT_EQ(F32ToF8E4M3(big), 0x7e) << big;
    EXPECT_EQ(F32ToF8E4M3(-big), 0xfe) << big;
  }
  EXPECT_EQ(F32ToF8E4M3(1e-30f), 0);
}

TEST(DTypeTest, ParseNames) {
  EXPECT_EQ(*ParseDType("Q8_0"), DType::kQ8_0);
  EXPECT_EQ(*ParseDType("bf16"), DType::kBF16);
  EXPECT_EQ(*ParseDType("F8_E4M3"), DType::kF8E4M3);
  EXPECT_STREQ(DTypeName(DType::kF8E4M3), "f8_e4m3");
  EXPECT_FALSE(ParseDType("q5_k").ok());
}

}  // namespace
}  // namespace strata

#include "worker/sampling/sampler.h"

#include <cmath>
#include <map>

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(SamplerTest, ArgmaxTakesLowestIdOnTies) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f};
  EXPECT_EQ(Argmax(logits), 1);
  std::vector<float> scratch;
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  EXPECT_EQ(SampleToken(logits, greedy, 0, scratch), 1);
}

TEST(SamplerTest, SeededDrawsAreReproducibleAndPositionDependent) {
  std::vector<float> logits(100);
  for (int i = 0; i < 100; ++i) logits[i] = std::sin(i * 0.7f);
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 42;
  std::vector<float> scratch;
  std::vector<int32_t> a, b, c;
  for (uint32_t pos = 0; pos < 50; ++pos) {
    a.push_back(SampleToken(logits, p, pos, scratch));
    b.push_back(SampleToken(logits, p, pos, scratch));
  }
  p.seed = 43;
  for (uint32_t pos = 0; pos < 50; ++pos) c.push_back(SampleToken(logits, p, pos, scratch));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

// Draw many samples and compare the frequencies with the filtered, renormalised softmax.
std::map<int32_t, double> Frequencies(const std::vector<float>& logits, SamplingParams p, int n) {
  std::vector<float> scratch;
  std::map<int32_t, double> f;
  for (int i = 0; i < n; ++i) f[SampleToken(logits, p, static_cast<uint32_t>(i), scratch)] += 1.0 / n;
  return f;
}

TEST(SamplerTest, TemperatureFollowsSoftmax) {
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};
  SamplingParams p;
  p.seed = 7;
  const auto f = Frequencies(logits, p, 20000);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(f.count(i) ? f.at(i) : 0.0, (i + 1) / 10.0, 0.015) << i;
}

TEST(SamplerTest, TopKTopPMinPFilter) {
  // Probabilities 0.1, 0.2, 0.3, 0.4.
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};
  SamplingParams p;
  p.seed = 9;
  p.top_k = 2;  // keeps 3 and 2: 4/7, 3/7
  auto f = Frequencies(logits, p, 20000);
  EXPECT_EQ(f.count(0) + f.count(1), 0u);
  EXPECT_NEAR(f[3], 4.0 / 7.0, 0.015);

  p.top_k = 0;
  p.top_p = 0.65f;  // 0.4 + 0.3 reaches 0.65
  f = Frequencies(logits, p, 20000);
  EXPECT_EQ(f.count(0) + f.count(1), 0u);
  EXPECT_NEAR(f[2], 3.0 / 7.0, 0.015);

  p.top_p = 1.0f;
  p.min_p = 0.6f;  // keeps p >= 0.24: 0.3 and 0.4
  f = Frequencies(logits, p, 20000);
  EXPECT_EQ(f.count(0) + f.count(1), 0u);
  EXPECT_NEAR(f[3], 4.0 / 7.0, 0.015);
}

TEST(SamplerTest, ValidateRejectsOutOfRange) {
  SamplingParams p;
  p.top_p = 0.0f;
  EXPECT_NE(p.Validate().message().find("top_p"), std::string::npos);
  p = {};
  p.temperature = -1.0f;
  EXPECT_NE(p.Validate().message().find("temperature"), std::string::npos);
  p = {};
  p.min_p = 2.0f;
  EXPECT_NE(p.Validate().message().find("min_p"), std::string::npos);
}

// Top-p without top-k is a share of the whole distribution, even when the sorted candidates
// examined hold more than the nucleus. 64 tied tokens of probability 1/68.97 each hold 92.8 %
// of the mass (the other 448 share the rest): the 0.9 nucleus is exactly ids 0..62 (62.07 of
// the 68.97 units, ties by id). A nucleus taken as 0.9 of the 64 candidates' mass would stop
// at id 57.
TEST(SamplerTest, TopPIsAShareOfTheWholeDistribution) {
  std::vector<float> logits(512, 0.0f);
  const float low = std::log(4.97f / 448.0f);
  for (size_t i = 64; i < logits.size(); ++i) logits[i] = low;
  SamplingParams p;
  p.seed = 11;
  p.top_p = 0.9f;
  const auto f = Frequencies(logits, p, 4000);
  for (int32_t id = 0; id < 63; ++id) EXPECT_GT(f.count(id) ? f.at(id) : 0.0, 0.0) << id;
  for (const auto& [id, share] : f) EXPECT_LT(id, 63) << "outside the nucleus";
}

}  // namespace
}  // namespace strata

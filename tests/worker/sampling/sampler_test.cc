#include "worker/sampling/sampler.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "common/philox.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

// A temperature whose inverse overflows is greedy (else every probability is NaN).
TEST(SamplerTest, AVanishingTemperatureIsGreedy) {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 1.5f};
  SamplingParams p;
  p.temperature = 1e-39f;
  EXPECT_TRUE(p.IsGreedy());
  std::vector<float> scratch;
  for (uint32_t position = 0; position < 20; ++position) {
    EXPECT_EQ(SampleToken(logits, p, position, scratch), 1);
  }
}

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

// The sampler's rules written plainly (a full sort, every filter in turn), for comparison with
// SampleToken's faster selection: the same token for the same Philox number.
int32_t PlainSample(const std::vector<float>& logits, const SamplingParams& p, uint32_t position) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  const float inv_t = 1.0f / p.temperature;
  const float max = *std::max_element(logits.begin(), logits.end());
  std::vector<float> e(vocab);
  double total = 0.0;
  for (int64_t i = 0; i < vocab; ++i) total += e[i] = std::exp((logits[i] - max) * inv_t);
  std::vector<int32_t> cands(vocab);
  std::iota(cands.begin(), cands.end(), 0);
  if (p.top_k > 0 || p.top_p < 1.0f) {
    std::stable_sort(cands.begin(), cands.end(),
                     [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
    if (p.top_k > 0 && p.top_k < vocab) cands.resize(p.top_k);
    double kept = 0.0;
    for (int32_t id : cands) kept += e[id];
    if (p.top_k <= 0) kept = total;
    double mass = 0.0;
    size_t n = 0;
    while (n < cands.size()) {
      mass += e[cands[n++]];
      if (mass >= p.top_p * kept) break;
    }
    cands.resize(n);
  }
  if (p.min_p > 0.0f) std::erase_if(cands, [&](int32_t id) { return e[id] < p.min_p; });
  double kept = 0.0;
  for (int32_t id : cands) kept += e[id];
  const double target = PhiloxUniform(p.seed, p.stream, position) * kept;
  double acc = 0.0;
  for (int32_t id : cands) {
    acc += e[id];
    if (acc > target) return id;
  }
  return cands.back();
}

// Flat rows (the nucleus is most of the vocabulary: the whole-vocabulary sort), peaked ones
// (64 or 256 candidates suffice), tied logits (ties by id, -0 and +0 alike), masked tokens.
TEST(SamplerTest, SelectionMatchesThePlainRules) {
  std::mt19937 random(3);
  std::vector<float> scratch;
  int checked = 0;
  for (int64_t vocab : {5, 300, 5000}) {
    for (int shape = 0; shape < 3; ++shape) {  // flat, peaked, tied
      for (int row = 0; row < 40; ++row) {
        std::vector<float> logits(vocab);
        std::normal_distribution<float> normal(0.0f, shape == 1 ? 4.0f : 0.5f);
        for (float& l : logits) l = normal(random);
        if (shape == 2) {
          for (float& l : logits) l = std::round(l * 4.0f) / 4.0f;
        }
        logits[row % vocab] = -INFINITY;
        SamplingParams p;
        p.temperature = std::array{0.5f, 1.0f, 1.3f}[row % 3];
        p.top_k = std::array{0, 0, 3, 40, 0, static_cast<int32_t>(vocab) + 2}[row % 6];
        p.top_p = std::array{1.0f, 0.9f, 0.5f, 0.99f}[row % 4];
        p.min_p = row % 5 == 0 ? 0.05f : 0.0f;
        p.seed = static_cast<uint64_t>(row);
        if (p.IsGreedy()) continue;
        const uint32_t position = static_cast<uint32_t>(row * 7);
        EXPECT_EQ(SampleToken(logits, p, position, scratch), PlainSample(logits, p, position))
            << "vocab " << vocab << " shape " << shape << " row " << row;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 300);
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

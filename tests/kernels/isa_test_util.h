// Shared pieces of the CPU kernel tests: a fixture parametrised by every ISA path this machine
// can run (each test forces its path and checks it against reference_ops), and random data.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/isa.h"

namespace strata::kernels::cpu {

inline std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : kAllIsas) {
    if (IsaSupported(isa)) isas.push_back(isa);
  }
  return isas;
}

inline std::string IsaParamName(const testing::TestParamInfo<Isa>& info) {
  return IsaName(info.param);
}

// Forces GetParam()'s ISA for the test's duration.
class IsaTest : public testing::TestWithParam<Isa> {
 protected:
  void SetUp() override { SetIsaForTesting(GetParam()); }
  void TearDown() override { SetIsaForTesting(SupportedIsas().back()); }
};

inline std::vector<float> RandomFloats(int64_t n, uint32_t seed, float lo = -1.0f,
                                       float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// |a - b| <= atol + rtol * scale, elementwise, reporting the first few failures.
inline void ExpectClose(const std::vector<float>& got, const std::vector<float>& want,
                        const std::vector<float>& scale, float rtol, float atol,
                        const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int failures = 0;
  for (size_t i = 0; i < got.size() && failures < 5; ++i) {
    const float tol = atol + rtol * (scale.empty() ? std::abs(want[i]) : scale[i]);
    if (!(std::abs(got[i] - want[i]) <= tol)) {
      ADD_FAILURE() << what << " at " << i << ": got " << got[i] << ", want " << want[i]
                    << " (tolerance " << tol << ")";
      ++failures;
    }
  }
}

}  // namespace strata::kernels::cpu

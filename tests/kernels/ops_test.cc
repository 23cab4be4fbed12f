// The elementwise and per-row ops (RmsNorm, ApplyRope, SiluMul, AddInPlace, EmbeddingLookup,
// WriteKv) on every ISA path against reference_ops. Sizes straddle the vector widths.
// Tolerances: rms_norm and silu 2e-6 relative (+1e-7), rope 1e-6 (same formula, cos/sin
// computed once per token), the rest exact.
#include <cmath>
#include <cstddef>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/reference_ops.h"
#include "tests/kernels/isa_test_util.h"

namespace strata::kernels::cpu {
namespace {

const int64_t kSizes[] = {1, 7, 8, 15, 16, 17, 33, 64, 100, 4099};

class OpsTest : public IsaTest {};

TEST_P(OpsTest, RmsNorm) {
  for (int64_t dim : kSizes) {
    const int64_t rows = 3;
    const std::vector<float> x = RandomFloats(rows * dim, 1, -3.0f, 3.0f);
    const std::vector<float> w = RandomFloats(dim, 2);
    std::vector<float> got(rows * dim), want(rows * dim);
    RmsNorm(x.data(), w.data(), rows, dim, 1e-5f, got.data());
    reference::RmsNorm(x.data(), w.data(), rows, dim, 1e-5f, want.data());
    ExpectClose(got, want, {}, 2e-6f, 1e-7f, absl::StrCat("dim=", dim));
    std::vector<float> in_place = x;  // y may alias x
    RmsNorm(in_place.data(), w.data(), rows, dim, 1e-5f, in_place.data());
    ExpectClose(in_place, want, {}, 2e-6f, 1e-7f, absl::StrCat("in place dim=", dim));
  }
}

TEST_P(OpsTest, ApplyRope) {
  struct Case {
    int64_t heads, head_dim, rotary_dim;
    RopeLayout layout;
    float mscale;
  };
  const Case cases[] = {{4, 64, 64, RopeLayout::kHalfSplit, 1.0f},
                        {2, 128, 128, RopeLayout::kInterleaved, 1.0f},
                        {3, 80, 32, RopeLayout::kHalfSplit, 1.2f},
                        {1, 96, 64, RopeLayout::kInterleaved, 0.9f}};
  const std::vector<int32_t> positions = {0, 1, 17, 4095, 131071};
  for (const Case& c : cases) {
    std::vector<float> inv_freq(c.rotary_dim / 2);
    for (int64_t i = 0; i < c.rotary_dim / 2; ++i) {
      inv_freq[i] = 1.0f / std::pow(500000.0f, 2.0f * i / c.rotary_dim);
    }
    const int64_t tokens = positions.size();
    std::vector<float> got = RandomFloats(tokens * c.heads * c.head_dim, 3);
    std::vector<float> want = got;
    ApplyRope(got.data(), tokens, c.heads, c.head_dim, positions.data(), inv_freq.data(),
              c.rotary_dim, c.layout, c.mscale);
    reference::ApplyRope(want.data(), tokens, c.heads, c.head_dim, positions.data(),
                         inv_freq.data(), c.rotary_dim, c.layout, c.mscale);
    ExpectClose(got, want, {}, 1e-6f, 1e-7f, absl::StrCat("head_dim=", c.head_dim));
  }
}

TEST_P(OpsTest, SiluMulAndAdd) {
  for (int64_t n : kSizes) {
    const std::vector<float> gate = RandomFloats(n, 4, -8.0f, 8.0f);
    const std::vector<float> up = RandomFloats(n, 5);
    std::vector<float> got(n), want(n);
    SiluMul(gate.data(), up.data(), n, got.data());
    reference::SiluMul(gate.data(), up.data(), n, want.data());
    ExpectClose(got, want, {}, 2e-6f, 1e-7f, absl::StrCat("silu n=", n));

    std::vector<float> sum = gate, sum_ref = gate;
    AddInPlace(sum.data(), up.data(), n);
    reference::AddInPlace(sum_ref.data(), up.data(), n);
    ExpectClose(sum, sum_ref, {}, 0.0f, 0.0f, absl::StrCat("add n=", n));
  }
}

TEST_P(OpsTest, EmbeddingLookupAllDtypes) {
  const int64_t vocab = 11, dim = 96;
  const std::vector<float> values = RandomFloats(vocab * dim, 6);
  const std::vector<int32_t> tokens = {3, 0, 10, 3};
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    const int64_t row_bytes = ElementsToBytes(dtype, dim);
    std::vector<std::byte> table(vocab * row_bytes);
    for (int64_t r = 0; r < vocab; ++r) {
      QuantizeRow(dtype, values.data() + r * dim, table.data() + r * row_bytes, dim);
    }
    const TensorView view = MakeView(dtype, {vocab, dim}, table.data());
    std::vector<float> got(tokens.size() * dim), want(tokens.size() * dim);
    EmbeddingLookup(view, tokens.data(), tokens.size(), got.data());
    reference::EmbeddingLookup(view, tokens.data(), tokens.size(), want.data());
    ExpectClose(got, want, {}, 0.0f, 0.0f, DTypeName(dtype));
    ExpectClose(std::vector<float>(got.begin(), got.begin() + dim),
                std::vector<float>(values.begin() + 3 * dim, values.begin() + 4 * dim), {},
                0.0f, 0.13f, absl::StrCat(DTypeName(dtype), " vs source"));
  }
}

TEST_P(OpsTest, WriteKv) {
  PagedKv cache{nullptr, nullptr, 4, 16, 2, 8};
  const int64_t cache_elems = cache.num_blocks * cache.block_size * 2 * 8;
  std::vector<float> k_got(cache_elems), v_got(cache_elems), k_want(cache_elems),
      v_want(cache_elems);
  const std::vector<float> k = RandomFloats(3 * 16, 7), v = RandomFloats(3 * 16, 8);
  const std::vector<int32_t> slots = {0, 37, 63};
  cache.k = k_got.data();
  cache.v = v_got.data();
  WriteKv(cache, k.data(), v.data(), slots.data(), 3);
  cache.k = k_want.data();
  cache.v = v_want.data();
  reference::WriteKv(cache, k.data(), v.data(), slots.data(), 3);
  ExpectClose(k_got, k_want, {}, 0.0f, 0.0f, "k");
  ExpectClose(v_got, v_want, {}, 0.0f, 0.0f, "v");
}

TEST(IsaTest, ActiveIsaIsBestSupported) {
  EXPECT_STREQ(ActiveIsa(), IsaName(SupportedIsas().back()));
}

INSTANTIATE_TEST_SUITE_P(Isas, OpsTest, testing::ValuesIn(SupportedIsas()), IsaParamName);

}  // namespace
}  // namespace strata::kernels::cpu

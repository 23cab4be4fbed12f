// MatMul on every ISA path against reference::MatMul, over all weight dtypes, batch sizes
// m in {1..8, 17, 64}, odd n, and strided (column- and row-sliced) weight views.
//
// Tolerance: |y - y_ref| <= 1e-5 * sum_k |x_k * w_k| (+1e-6). Float weights accumulate in f32
// in another order; quantized weights see identical q8_0 activations and exact integer block
// dots, so only the f32 accumulation order differs there too.
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/tensor.h"
#include "common/thread_pool.h"
#include "gtest/gtest.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/reference_ops.h"
#include "tests/kernels/isa_test_util.h"

namespace strata::kernels::cpu {
namespace {

enum class ViewKind { kContiguous, kColSlice, kRowSlice };

// A weight matrix in `dtype` and the view under test; the view is a slice of a larger buffer
// for kColSlice (32 extra columns on each side) and kRowSlice (rows 3.. of a taller matrix).
struct Weights {
  std::vector<std::byte> storage;
  TensorView view;
};

Weights MakeWeights(DType dtype, int64_t n, int64_t k, ViewKind kind, uint32_t seed) {
  const int64_t pad_cols = kind == ViewKind::kColSlice ? 32 : 0;
  const int64_t pad_rows = kind == ViewKind::kRowSlice ? 3 : 0;
  const int64_t full_rows = n + pad_rows, full_cols = k + 2 * pad_cols;
  const std::vector<float> values = RandomFloats(full_rows * full_cols, seed);
  Weights w;
  const int64_t row_bytes = ElementsToBytes(dtype, full_cols);
  w.storage.resize(full_rows * row_bytes);
  for (int64_t r = 0; r < full_rows; ++r) {
    QuantizeRow(dtype, values.data() + r * full_cols, w.storage.data() + r * row_bytes,
                full_cols);
  }
  TensorView full = MakeView(dtype, {full_rows, full_cols}, w.storage.data());
  if (kind == ViewKind::kColSlice) full = full.SliceCols(pad_cols, pad_cols + k).value();
  if (kind == ViewKind::kRowSlice) full = full.SliceRows(pad_rows, pad_rows + n).value();
  w.view = full;
  return w;
}

// sum_k |x[i, k] * w[j, k]| for every (i, j): the scale of the rounding error.
std::vector<float> AbsProducts(const std::vector<float>& x, int64_t m, const TensorView& w) {
  const int64_t n = w.Rows(), k = w.Cols();
  std::vector<float> row(k), out(m * n);
  for (int64_t j = 0; j < n; ++j) {
    DequantizeRow(w.dtype, w.Row(j), row.data(), k);
    for (int64_t i = 0; i < m; ++i) {
      float s = 0.0f;
      for (int64_t kk = 0; kk < k; ++kk) s += std::abs(x[i * k + kk] * row[kk]);
      out[i * n + j] = s;
    }
  }
  return out;
}

class MatMulTest : public IsaTest {};

TEST_P(MatMulTest, MatchesReference) {
  ThreadPool pool(2);
  const DType dtypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0};
  const int64_t ms[] = {1, 2, 3, 4, 5, 7, 8, 17, 64};
  struct Shape2 {
    int64_t n, k;
  };
  const Shape2 shapes[] = {{1, 32}, {7, 64}, {33, 96}, {37, 256}, {130, 320}};
  const ViewKind kinds[] = {ViewKind::kContiguous, ViewKind::kColSlice, ViewKind::kRowSlice};
  uint32_t seed = 1;
  for (DType dtype : dtypes) {
    for (const Shape2& s : shapes) {
      for (ViewKind kind : kinds) {
        const Weights w = MakeWeights(dtype, s.n, s.k, kind, ++seed);
        for (int64_t m : ms) {
          const std::vector<float> x = RandomFloats(m * s.k, ++seed);
          std::vector<float> got(m * s.n, NAN), want(m * s.n);
          MatMul(x.data(), m, w.view, got.data(), pool);
          reference::MatMul(x.data(), m, w.view, want.data());
          ExpectClose(got, want, AbsProducts(x, m, w.view), 1e-5f, 1e-6f,
                      absl::StrCat(DTypeName(dtype), " m=", m, " n=", s.n, " k=", s.k,
                                   " view=", static_cast<int>(kind)));
        }
      }
    }
  }
}

// Float weights also take k that is not a multiple of any vector width.
TEST_P(MatMulTest, FloatWeightsOddK) {
  ThreadPool pool(2);
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (int64_t k : {1, 7, 20, 45}) {
      const Weights w = MakeWeights(dtype, 9, k, ViewKind::kContiguous, 7);
      for (int64_t m : {1, 5}) {
        const std::vector<float> x = RandomFloats(m * k, 11);
        std::vector<float> got(m * 9, NAN), want(m * 9);
        MatMul(x.data(), m, w.view, got.data(), pool);
        reference::MatMul(x.data(), m, w.view, want.data());
        ExpectClose(got, want, AbsProducts(x, m, w.view), 1e-5f, 1e-6f,
                    absl::StrCat(DTypeName(dtype), " m=", m, " k=", k));
      }
    }
  }
}

// The activation quantizer of each path must equal QuantizeRow bit for bit (matmul results
// are compared against a reference that uses QuantizeRow), including exact .5 ties, which
// roundf takes away from zero.
TEST_P(MatMulTest, QuantizeQ8MatchesQuantizeRow) {
  const int64_t k = 32 * 40;
  std::vector<float> x = RandomFloats(k, 9, -4.0f, 4.0f);
  for (int64_t i = 0; i < 32; ++i) x[i] = static_cast<float>(i) - 15.5f;  // amax 16.5: ties
  for (int64_t i = 32; i < 64; ++i) x[i] = i == 40 ? 127.0f : (i - 48) * 0.5f;  // d == 1
  for (int64_t i = 64; i < 96; ++i) x[i] = 0.0f;                                 // d == 0
  for (int64_t i = 96; i < 128; ++i) x[i] *= 1e-6f;                              // tiny d
  std::vector<BlockQ8_0> got(k / 32), want(k / 32);
  ActiveKernels().quantize_q8(x.data(), k, got.data());
  QuantizeRow(DType::kQ8_0, x.data(), want.data(), k);
  for (int64_t b = 0; b < k / 32; ++b) {
    EXPECT_EQ(got[b].d, want[b].d) << "block " << b;
    for (int j = 0; j < 32; ++j) {
      EXPECT_EQ(got[b].q[j], want[b].q[j]) << "block " << b << "[" << j << "]";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, MatMulTest, testing::ValuesIn(SupportedIsas()), IsaParamName);

}  // namespace
}  // namespace strata::kernels::cpu

namespace strata::kernels::cpu {
namespace {

// MatMulGroup is the same arithmetic as one MatMul per weight, run as one parallel loop: the
// outputs must be identical bit for bit, for every dtype and m.
TEST(MatMulGroupTest, EqualsSeparateMatMuls) {
  ThreadPool pool(2);
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    for (int64_t m : {1, 3, 17}) {
      const int64_t k = 96;
      const std::vector<float> x = RandomFloats(m * k, 11);
      Weights a = MakeWeights(dtype, 700, k, ViewKind::kContiguous, 1);
      Weights b = MakeWeights(dtype, 333, k, ViewKind::kColSlice, 2);
      Weights c = MakeWeights(dtype, 50, k, ViewKind::kRowSlice, 3);
      std::vector<float> ya(m * 700), yb(m * 333), yc(m * 50);
      const TensorView* ws[] = {&a.view, &b.view, &c.view};
      float* ys[] = {ya.data(), yb.data(), yc.data()};
      MatMulGroup(x.data(), m, ws, ys, pool);
      std::vector<float> ra(m * 700), rb(m * 333), rc(m * 50);
      MatMul(x.data(), m, a.view, ra.data(), pool);
      MatMul(x.data(), m, b.view, rb.data(), pool);
      MatMul(x.data(), m, c.view, rc.data(), pool);
      EXPECT_EQ(ya, ra) << DTypeName(dtype) << " m=" << m;
      EXPECT_EQ(yb, rb) << DTypeName(dtype) << " m=" << m;
      EXPECT_EQ(yc, rc) << DTypeName(dtype) << " m=" << m;
    }
  }
}

}  // namespace
}  // namespace strata::kernels::cpu

// Backend parity, in the spirit of llama.cpp's test-backend-ops: one table of op cases (shapes,
// dtypes, ragged batches, block sizes, context lengths, windows, softcaps, routings) that every
// backend built into this binary runs, each result compared with a plain reference written
// here (straightforward loops in double precision over the same rounded inputs), with a
// tolerance per op and dtype.
//
// Backends: the CPU backend once per instruction-set path this machine runs (scalar, AVX2,
// AVX-512), and the CUDA backend where this binary has it and a GPU is present. A backend that
// computes in bf16 gets inputs that bf16 represents exactly (so its references use the same
// values), activations staged in its dtype, and tolerance floors for one bf16 rounding of
// results.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/step.h"
#include "gtest/gtest.h"
#include "kernels/cpu/isa.h"
#include "worker/backend/cpu_backend.h"
#include "worker/backend/cpu_moe.h"
#include "worker/sampling/sampler.h"
#if STRATA_HAVE_CUDA_BACKEND
#include "worker/backend/cuda_backend.h"
#endif

namespace strata {
namespace {

using Vec = std::vector<float>;

// ---- Backends under test ---------------------------------------------------------------------

struct BackendCase {
  std::string name;
  std::function<std::unique_ptr<Backend>()> make;
  std::function<void()> select;  // process-wide setup before `make` (the CPU's ISA path)
  DType inputs = DType::kF32;    // test inputs are exactly representable in this type
  DType matrices = DType::kF32;  // what the backend stores matrices in (kF32: as given)
  double rtol_floor = 0.0;       // tolerance floors (one bf16 rounding of results)
  double atol_floor = 0.0;
  double matmul_rtol = 0.0;      // floor of MatMul's tolerance (of sum |x w|; f32 output)
};

std::vector<BackendCase> Backends() {
  std::vector<BackendCase> out;
  for (kernels::cpu::Isa isa : kernels::cpu::kAllIsas) {
    if (!kernels::cpu::IsaSupported(isa)) continue;
    out.push_back({absl::StrCat("cpu_", kernels::cpu::IsaName(isa)),
                   [] { return MakeCpuBackend(2); },
                   [isa] { kernels::cpu::SetIsaForTesting(isa); }});
  }
#if STRATA_HAVE_CUDA_BACKEND
  if (CudaDeviceInfo(0).ok()) {
    BackendCase cuda{"cuda",
                     []() -> std::unique_ptr<Backend> {
                       auto backend = MakeCudaBackend(DeviceSpec::Of(DeviceKind::kCuda, 0));
                       EXPECT_TRUE(backend.ok()) << backend.status();
                       return backend.ok() ? *std::move(backend) : nullptr;
                     },
                     nullptr};
    cuda.inputs = DType::kBF16;
    cuda.matrices = DType::kBF16;
    cuda.rtol_floor = 1e-2;
    cuda.atol_floor = 1e-3;
    cuda.matmul_rtol = 1e-5;
    out.push_back(std::move(cuda));
  }
#endif
  return out;
}

// ---- Host staging ----------------------------------------------------------------------------

// The type every test input must be exact in (the backend under test's BackendCase::inputs).
DType g_inputs = DType::kF32;

Vec Random(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Vec v(n);
  for (float& f : v) f = dist(rng);
  if (g_inputs != DType::kF32) {
    std::vector<std::byte> bytes(ElementsToBytes(g_inputs, n));
    QuantizeRow(g_inputs, v.data(), bytes.data(), n);
    DequantizeRow(g_inputs, bytes.data(), v.data(), n);
  }
  return v;
}

// Values as `dtype` stores them (rounded through it), row by row.
Vec RoundThrough(DType dtype, const Vec& v, int64_t cols) {
  if (dtype == DType::kF32) return v;
  Vec out(v.size());
  std::vector<std::byte> row(ElementsToBytes(dtype, cols));
  for (size_t r = 0; r < v.size() / cols; ++r) {
    QuantizeRow(dtype, v.data() + r * cols, row.data(), cols);
    DequantizeRow(dtype, row.data(), out.data() + r * cols, cols);
  }
  return out;
}

class Session {
 public:
  explicit Session(Backend& b) : b_(b) {}

  Tensor F32(Shape shape, const Vec& values) { return Make(DType::kF32, std::move(shape), values.data()); }
  // Activations and KV cache contents in the backend's own types.
  Tensor Act(Shape shape, const Vec& values) {
    return Staged(b_.device().activation_dtype, std::move(shape), values);
  }
  Tensor ActZeros(Shape shape) { return Zeros(b_.device().activation_dtype, std::move(shape)); }
  Tensor Kv(Shape shape, const Vec& values) {
    return Staged(b_.device().kv_dtype, std::move(shape), values);
  }
  Tensor I32(Shape shape, const std::vector<int32_t>& values) {
    return Make(DType::kI32, std::move(shape), values.data());
  }
  Tensor Zeros(DType dtype, Shape shape) {
    auto buffer = b_.Allocate(dtype, std::move(shape));
    EXPECT_TRUE(buffer.ok()) << buffer.status();
    keep_.push_back(*buffer);
    return buffer->tensor;
  }
  // A weight of `dtype` from f32 values (quantized on the host).
  Weight W(DType dtype, Shape shape, const Vec& values) {
    const int64_t cols = shape.back();
    std::vector<std::byte> bytes(ElementsToBytes(dtype, static_cast<int64_t>(values.size())));
    const int64_t row_bytes = ElementsToBytes(dtype, cols);
    for (size_t r = 0; r < values.size() / cols; ++r) {
      QuantizeRow(dtype, values.data() + r * cols, bytes.data() + r * row_bytes, cols);
    }
    auto w = b_.UploadWeight(dtype, std::move(shape), bytes.data());
    EXPECT_TRUE(w.ok()) << w.status();
    return *w;
  }
  Vec Read(const Tensor& t) {
    Vec host(t.NumElements());
    if (t.dtype == DType::kF32) {
      b_.CopyToHost(t, host.data());
      EXPECT_TRUE(b_.Sync().ok());
      return host;
    }
    std::vector<std::byte> bytes(t.Bytes());
    b_.CopyToHost(t, bytes.data());
    EXPECT_TRUE(b_.Sync().ok());
    DequantizeRow(t.dtype, bytes.data(), host.data(), t.NumElements());
    return host;
  }
  std::vector<int32_t> ReadI32(const Tensor& t) {
    std::vector<int32_t> host(t.NumElements());
    b_.CopyToHost(t, host.data());
    EXPECT_TRUE(b_.Sync().ok());
    return host;
  }

 private:
  Tensor Staged(DType dtype, Shape shape, const Vec& values) {
    if (dtype == DType::kF32) return Make(dtype, std::move(shape), values.data());
    std::vector<std::byte> bytes(ElementsToBytes(dtype, static_cast<int64_t>(values.size())));
    QuantizeRow(dtype, values.data(), bytes.data(), static_cast<int64_t>(values.size()));
    return Make(dtype, std::move(shape), bytes.data());
  }
  Tensor Make(DType dtype, Shape shape, const void* host) {
    Tensor t = Zeros(dtype, std::move(shape));
    b_.CopyFromHost(host, t);
    return t;
  }
  Backend& b_;
  std::vector<Buffer> keep_;
};

// |got - want| <= atol + rtol * scale (scale: |want| unless given), first failures reported.
void ExpectClose(const Vec& got, const Vec& want, double rtol, double atol, const std::string& what,
                 const Vec& scale = {}) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int failures = 0;
  for (size_t i = 0; i < got.size() && failures < 5; ++i) {
    const double tol = atol + rtol * (scale.empty() ? std::fabs(want[i]) : scale[i]);
    if (!(std::fabs(got[i] - want[i]) <= tol)) {
      ADD_FAILURE() << what << " at " << i << ": got " << got[i] << ", want " << want[i]
                    << " (tolerance " << tol << ")";
      ++failures;
    }
  }
}

class BackendParityTest : public ::testing::TestWithParam<BackendCase> {
 protected:
  void SetUp() override {
    if (GetParam().select) GetParam().select();
    g_inputs = GetParam().inputs;
    backend_ = GetParam().make();
    ASSERT_NE(backend_, nullptr);
    s_ = std::make_unique<Session>(*backend_);
  }
  void TearDown() override {
    s_.reset();
    backend_.reset();
    // Back to the best path this machine has (the default).
    kernels::cpu::Isa best = kernels::cpu::Isa::kScalar;
    for (kernels::cpu::Isa isa : kernels::cpu::kAllIsas) {
      if (kernels::cpu::IsaSupported(isa)) best = isa;
    }
    kernels::cpu::SetIsaForTesting(best);
    g_inputs = DType::kF32;
  }
  Backend& b() { return *backend_; }
  double Rtol(double r) const { return std::max(r, GetParam().rtol_floor); }
  double Atol(double a) const { return std::max(a, GetParam().atol_floor); }
  Session& s() { return *s_; }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Session> s_;
};

// ---- MatMul ----------------------------------------------------------------------------------

// Quantized weights run against activations quantized to q8_0: their error scales with
// sum |x_i w_i| (1/127 of it per term at most, far less on average).
struct MatMulCase {
  DType dtype;
  int64_t m, n, k;
  bool bias;
  double rtol;  // of sum |x w|
};

TEST_P(BackendParityTest, MatMul) {
  const MatMulCase cases[] = {
      {DType::kF32, 1, 64, 32, false, 1e-6},   {DType::kF32, 7, 96, 64, true, 1e-6},
      {DType::kF32, 33, 130, 256, false, 1e-6}, {DType::kF16, 1, 40, 64, true, 1e-6},
      {DType::kF16, 17, 64, 96, false, 1e-6},  {DType::kBF16, 5, 48, 128, false, 1e-6},
      {DType::kQ8_0, 1, 64, 64, false, 1e-2},  {DType::kQ8_0, 9, 100, 256, true, 1e-2},
      {DType::kQ4_0, 1, 64, 64, false, 1e-2},  {DType::kQ4_0, 12, 80, 128, false, 1e-2},
  };
  for (const MatMulCase& c : cases) {
    const std::string what = absl::StrCat(DTypeName(c.dtype), " ", c.m, "x", c.n, "x", c.k);
    const Vec x = Random(c.m * c.k, 1), w_values = Random(c.n * c.k, 2), bias_values = Random(c.n, 3);
    const Vec w = RoundThrough(GetParam().matrices, RoundThrough(c.dtype, w_values, c.k), c.k);
    const Weight weight = s().W(c.dtype, {c.n, c.k}, w_values);
    const Weight bias = s().W(DType::kF32, {c.n}, bias_values);
    const Tensor y = s().Zeros(DType::kF32, {c.m, c.n});
    b().MatMul(s().Act({c.m, c.k}, x), weight, c.bias ? &bias : nullptr, y);
    Vec want(c.m * c.n), scale(c.m * c.n);
    for (int64_t i = 0; i < c.m; ++i) {
      for (int64_t j = 0; j < c.n; ++j) {
        double sum = c.bias ? bias_values[j] : 0.0, mag = 0;
        for (int64_t kk = 0; kk < c.k; ++kk) {
          sum += double{x[i * c.k + kk]} * w[j * c.k + kk];
          mag += std::fabs(double{x[i * c.k + kk]} * w[j * c.k + kk]);
        }
        want[i * c.n + j] = static_cast<float>(sum);
        scale[i * c.n + j] = static_cast<float>(mag);
      }
    }
    ExpectClose(s().Read(y), want, std::max(c.rtol, GetParam().matmul_rtol), 1e-6, what, scale);
  }
}

// Batch invariance: a row's product has the same bits whatever other rows share the call
// (the CPU reduces every output in one FMA chain whatever its tile; the CUDA backend runs one
// cuBLASLt algorithm per weight for every row count), for float and quantized weights, into
// f32 and into the activation type.
TEST_P(BackendParityTest, MatMulRowsDoNotDependOnTheRowCount) {
  const int64_t k = 512, n = 384, most = 256;
  const Vec x = Random(most * k, 40);
  for (DType w_dtype : {DType::kBF16, DType::kF32, DType::kQ8_0, DType::kQ4_0}) {
    const Weight w = s().W(w_dtype, {n, k}, Random(n * k, 41));
    for (DType y_dtype : {DType::kF32, b().device().activation_dtype}) {
      const Tensor all = s().Zeros(y_dtype, {most, n});
      b().MatMul(s().Act({most, k}, x), w, nullptr, all);
      const Vec whole = s().Read(all);
      for (int64_t m : {1, 2, 3, 7, 64, 129}) {
        const Tensor y = s().Zeros(y_dtype, {m, n});
        b().MatMul(s().Act({m, k}, Vec(x.begin(), x.begin() + m * k)), w, nullptr, y);
        const Vec part = s().Read(y);
        EXPECT_TRUE(std::equal(part.begin(), part.end(), whole.begin()))
            << DTypeName(w_dtype) << " weights: " << m << " rows into " << DTypeName(y_dtype)
            << " differ from the same rows among " << most;
      }
    }
  }
}

TEST_P(BackendParityTest, MatMulGroupSharesTheInput) {
  const int64_t m = 5, k = 64;
  const Vec x = Random(m * k, 4);
  const int64_t rows[] = {32, 16, 16};  // q, k, v
  std::vector<Weight> ws;
  std::vector<Vec> values;
  std::vector<Tensor> ys;
  for (int i = 0; i < 3; ++i) {
    values.push_back(Random(rows[i] * k, 10 + i));
    ws.push_back(s().W(DType::kF32, {rows[i], k}, values.back()));
    values.back() = RoundThrough(GetParam().matrices, values.back(), k);
    ys.push_back(s().Zeros(DType::kF32, {m, rows[i]}));
  }
  const Weight bias = s().W(DType::kF32, {16}, Random(16, 20));
  const Weight* wp[] = {&ws[0], &ws[1], &ws[2]};
  const Weight* bp[] = {nullptr, &bias, nullptr};
  b().MatMulGroup(s().Act({m, k}, x), wp, bp, ys);
  const Vec bias_values = Random(16, 20);
  for (int i = 0; i < 3; ++i) {
    Vec want(m * rows[i]);
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t j = 0; j < rows[i]; ++j) {
        double sum = i == 1 ? bias_values[j] : 0.0;
        for (int64_t kk = 0; kk < k; ++kk) sum += double{x[r * k + kk]} * values[i][j * k + kk];
        want[r * rows[i] + j] = static_cast<float>(sum);
      }
    }
    ExpectClose(s().Read(ys[i]), want, std::max(1e-5, GetParam().matmul_rtol), 1e-6,
                absl::StrCat("output ", i));
  }
}

// ---- Step plans ------------------------------------------------------------------------------

// A step of sequences (new tokens, cached before) over `block_size` blocks handed out in a
// scattered order, as a running server's blocks are.
struct SeqSpec {
  int32_t new_tokens;
  int32_t cached;
};

StepBatch MakeBatch(const std::vector<SeqSpec>& seqs, int32_t block_size, int64_t num_blocks,
                    uint32_t seed, bool all_logits = false) {
  std::vector<int32_t> free(num_blocks);
  std::iota(free.begin(), free.end(), 0);
  std::shuffle(free.begin(), free.end(), std::mt19937(seed));
  StepBatch batch;
  size_t next = 0;
  std::mt19937 rng(seed + 1);
  for (const SeqSpec& s : seqs) {
    const int32_t total = s.cached + s.new_tokens;
    std::vector<int32_t> table;
    for (int32_t t = 0; t < total; t += block_size) table.push_back(free.at(next++));
    std::vector<int32_t> tokens(s.new_tokens);
    for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % 100);
    batch.AddSequence(tokens, s.cached, table, block_size, all_logits);
  }
  return batch;
}

TEST_P(BackendParityTest, EmbeddingOfAVocabSlice) {
  for (DType dtype : {DType::kF32, DType::kF16, DType::kQ8_0}) {
    const int64_t rows = 40, dim = 64, begin = 30;  // this slice holds ids [30, 70)
    const Vec table_values = Random(rows * dim, 5);
    const Vec table = RoundThrough(dtype, table_values, dim);
    const Weight w = s().W(dtype, {rows, dim}, table_values);
    const StepBatch batch = MakeBatch({{9, 0}, {4, 3}}, 16, 8, 6);
    auto plan = b().PlanStep(batch);
    ASSERT_TRUE(plan.ok());
    const Tensor out = s().ActZeros({batch.num_tokens(), dim});
    b().Embedding(**plan, w, begin, 0.5f, out);
    Vec want(batch.num_tokens() * dim, 0.0f);
    for (int64_t t = 0; t < batch.num_tokens(); ++t) {
      const int64_t id = batch.tokens[t] - begin;
      if (id < 0 || id >= rows) continue;
      for (int64_t j = 0; j < dim; ++j) want[t * dim + j] = 0.5f * table[id * dim + j];
    }
    ExpectClose(s().Read(out), want, Rtol(0), Atol(0), DTypeName(dtype));
  }
}

// ---- Norms and elementwise -------------------------------------------------------------------

TEST_P(BackendParityTest, Norms) {
  for (int64_t dim : {1, 7, 64, 4099}) {
    for (NormKind kind : {NormKind::kRms, NormKind::kLayer}) {
      for (bool with_bias : {false, true}) {
        if (kind == NormKind::kRms && with_bias) continue;
        const int64_t rows = 3;
        const Vec x = Random(rows * dim, 7, -3, 3), w = Random(dim, 8), bias = Random(dim, 9);
        const Weight ww = s().W(DType::kF32, {dim}, w), bw = s().W(DType::kF32, {dim}, bias);
        NormParams p;
        p.kind = kind;
        p.eps = 1e-5f;
        p.weight = &ww;
        p.bias = with_bias ? &bw : nullptr;
        const Tensor y = s().ActZeros({rows, dim});
        b().Norm(s().Act({rows, dim}, x), p, y);
        Vec want(rows * dim);
        for (int64_t r = 0; r < rows; ++r) {
          double mean = 0, var = 0, ss = 0;
          for (int64_t i = 0; i < dim; ++i) mean += x[r * dim + i];
          mean /= dim;
          for (int64_t i = 0; i < dim; ++i) {
            var += (x[r * dim + i] - mean) * (x[r * dim + i] - mean);
            ss += double{x[r * dim + i]} * x[r * dim + i];
          }
          for (int64_t i = 0; i < dim; ++i) {
            const double v = kind == NormKind::kRms
                                 ? x[r * dim + i] / std::sqrt(ss / dim + 1e-5) * w[i]
                                 : (x[r * dim + i] - mean) / std::sqrt(var / dim + 1e-5) * w[i] +
                                       (with_bias ? bias[i] : 0.0);
            want[r * dim + i] = static_cast<float>(v);
          }
        }
        ExpectClose(s().Read(y), want, Rtol(2e-5), Atol(2e-6),
                    absl::StrCat(kind == NormKind::kRms ? "rms" : "layer", " dim ", dim,
                                 with_bias ? " bias" : ""));
      }
    }
  }
}

TEST_P(BackendParityTest, AddNormUpdatesTheResidual) {
  const int64_t rows = 4, dim = 96;
  const Vec x = Random(rows * dim, 11), d = Random(rows * dim, 12), w = Random(dim, 13);
  const Weight ww = s().W(DType::kF32, {dim}, w);
  NormParams p;
  p.eps = 1e-6f;
  p.weight = &ww;
  const Tensor residual = s().Act({rows, dim}, x);
  const Tensor y = s().ActZeros({rows, dim});
  b().AddNorm(residual, s().Act({rows, dim}, d), p, y);
  Vec sum(rows * dim), want(rows * dim);
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = x[i] + d[i];
  sum = RoundThrough(b().device().activation_dtype, sum, dim);  // the stored residual
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double{sum[r * dim + i]} * sum[r * dim + i];
    for (int64_t i = 0; i < dim; ++i) {
      want[r * dim + i] = static_cast<float>(sum[r * dim + i] / std::sqrt(ss / dim + 1e-6) * w[i]);
    }
  }
  ExpectClose(s().Read(residual), sum, 0, 0, "residual");
  ExpectClose(s().Read(y), want, Rtol(2e-5), Atol(2e-6), "normed");
}

double Act(Activation act, double x) {
  switch (act) {
    case Activation::kSilu: return x / (1 + std::exp(-x));
    case Activation::kGeluTanh:
      return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case Activation::kGeluErf: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
  }
  return 0;
}

TEST_P(BackendParityTest, ActivationsAddAndSoftcap) {
  const int64_t n = 70000;  // past the parallel threshold
  const Vec g = Random(n, 14, -6, 6), u = Random(n, 15);
  for (Activation act : {Activation::kSilu, Activation::kGeluTanh, Activation::kGeluErf}) {
    const Tensor out = s().ActZeros({n});
    b().GatedActivation(s().Act({n}, g), s().Act({n}, u), act, out);
    Vec want(n), plain(n);
    for (int64_t i = 0; i < n; ++i) {
      want[i] = static_cast<float>(Act(act, g[i]) * u[i]);
      plain[i] = static_cast<float>(Act(act, g[i]));
    }
    ExpectClose(s().Read(out), want, Rtol(2e-6), Atol(1e-7), absl::StrCat("gated ", static_cast<int>(act)));
    const Tensor in_place = s().Act({n}, g);
    b().Activate(in_place, act);
    ExpectClose(s().Read(in_place), plain, Rtol(2e-6), Atol(1e-7), absl::StrCat("plain ", static_cast<int>(act)));
  }
  const Tensor x = s().Act({n}, g);
  b().Add(x, s().Act({n}, u));
  Vec sum(n);
  for (int64_t i = 0; i < n; ++i) sum[i] = g[i] + u[i];
  sum = RoundThrough(b().device().activation_dtype, sum, n);  // one rounding of an exact sum
  ExpectClose(s().Read(x), sum, 0, 0, "add");
  const Tensor capped = s().Act({n}, g);
  b().Softcap(capped, 2.5f);
  Vec want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = static_cast<float>(2.5 * std::tanh(g[i] / 2.5));
  ExpectClose(s().Read(capped), want, Rtol(1e-6), Atol(1e-7), "softcap");
}

TEST_P(BackendParityTest, CopyColumnsAndGatherLogitRows) {
  const Vec src = Random(5 * 12, 16);
  const Tensor dst = s().ActZeros({5, 20});
  b().CopyColumns(s().Act({5, 12}, src), 3, dst, 10, 7);
  Vec want(5 * 20, 0.0f);
  for (int r = 0; r < 5; ++r) {
    for (int c = 0; c < 7; ++c) want[r * 20 + 10 + c] = src[r * 12 + 3 + c];
  }
  ExpectClose(s().Read(dst), want, 0, 0, "columns");

  const StepBatch batch = MakeBatch({{6, 0}, {1, 9}, {3, 2}}, 16, 8, 17);
  auto plan = b().PlanStep(batch);
  ASSERT_TRUE(plan.ok());
  const Vec hidden = Random(batch.num_tokens() * 8, 18);
  const Tensor rows = s().ActZeros({3, 8});
  b().GatherLogitRows(**plan, s().Act({batch.num_tokens(), 8}, hidden), rows);
  Vec gathered;
  for (int32_t r : batch.logit_rows) {
    gathered.insert(gathered.end(), hidden.begin() + r * 8, hidden.begin() + (r + 1) * 8);
  }
  ExpectClose(s().Read(rows), gathered, 0, 0, "logit rows");
}

// f32 -> bf16 rounds to nearest even, bf16 -> f32 is exact (the staging of bf16 collectives).
TEST_P(BackendParityTest, ConvertBetweenF32AndBf16) {
  const int64_t n = 5000;
  Vec x(n);  // plain f32 values (not Random's, which a bf16 backend rounds already)
  std::mt19937 rng(19);
  std::uniform_real_distribution<float> dist(-100.0f, 100.0f);
  for (float& v : x) v = dist(rng);
  const Tensor narrow = s().Zeros(DType::kBF16, {n});
  b().Convert(s().F32({n}, x), narrow);
  const Vec rounded = RoundThrough(DType::kBF16, x, n);
  ExpectClose(s().Read(narrow), rounded, 0, 0, "f32 -> bf16");
  const Tensor wide = s().Zeros(DType::kF32, {n});
  b().Convert(narrow, wide);
  ExpectClose(s().Read(wide), rounded, 0, 0, "bf16 -> f32");
}

// ---- RoPE ------------------------------------------------------------------------------------

struct RopeCase {
  int64_t heads, head_dim, rotary_dim;
  RopeLayout layout;
  float mscale;
  bool longrope;  // a second table for the sequences past a threshold
};

TEST_P(BackendParityTest, Rope) {
  const RopeCase cases[] = {{4, 64, 64, RopeLayout::kHalfSplit, 1.0f, false},
                            {2, 128, 128, RopeLayout::kInterleaved, 1.0f, false},
                            {3, 80, 32, RopeLayout::kHalfSplit, 1.2f, false},
                            {2, 20, 8, RopeLayout::kHalfSplit, 1.0f, false},
                            {2, 64, 64, RopeLayout::kHalfSplit, 1.19f, true}};
  for (const RopeCase& c : cases) {
    // Three sequences; with longrope the second and third run past the threshold.
    const StepBatch batch = MakeBatch({{5, 0}, {1, 300}, {3, 4090}}, 16, 300, 19);
    auto plan = b().PlanStep(batch);
    ASSERT_TRUE(plan.ok());
    const int64_t t = batch.num_tokens(), half = c.rotary_dim / 2;
    Vec inv(half), long_inv(half);
    for (int64_t i = 0; i < half; ++i) {
      inv[i] = static_cast<float>(std::pow(10000.0, -2.0 * i / c.rotary_dim));
      long_inv[i] = inv[i] / (1.0f + i);
    }
    const Weight inv_w = s().W(DType::kF32, {half}, inv), long_w = s().W(DType::kF32, {half}, long_inv);
    RopeParams p;
    p.inv_freq = &inv_w;
    p.rotary_dim = c.rotary_dim;
    p.layout = c.layout;
    p.mscale = c.mscale;
    if (c.longrope) {
      p.long_inv_freq = &long_w;
      p.long_threshold = 256;
      p.long_mscale = c.mscale;
    }
    const Vec x = Random(t * c.heads * c.head_dim, 20);
    const Tensor xt = s().Act({t, c.heads, c.head_dim}, x);
    b().Rope(**plan, xt, p);
    Vec want = x;
    for (int64_t s_ = 0; s_ < batch.num_seqs(); ++s_) {
      const bool use_long = c.longrope && batch.context_lens[s_] > 256;
      for (int32_t tok = batch.query_start[s_]; tok < batch.query_start[s_ + 1]; ++tok) {
        for (int64_t h = 0; h < c.heads; ++h) {
          float* v = want.data() + (tok * c.heads + h) * c.head_dim;
          for (int64_t i = 0; i < half; ++i) {
            const double theta = double{static_cast<float>(batch.positions[tok]) *
                                        (use_long ? long_inv[i] : inv[i])};
            const int64_t a = c.layout == RopeLayout::kHalfSplit ? i : 2 * i;
            const int64_t bb = c.layout == RopeLayout::kHalfSplit ? i + half : 2 * i + 1;
            const double x0 = v[a], x1 = v[bb];
            v[a] = static_cast<float>(c.mscale * (x0 * std::cos(theta) - x1 * std::sin(theta)));
            v[bb] = static_cast<float>(c.mscale * (x0 * std::sin(theta) + x1 * std::cos(theta)));
          }
        }
      }
    }
    // The angle is the same f32 product on both sides; only cos/sin precision differs.
    ExpectClose(s().Read(xt), want, Rtol(1e-5), Atol(1e-5),
                absl::StrCat(c.heads, "x", c.head_dim, " rotary ", c.rotary_dim));
  }
}

// ---- Paged KV and attention ------------------------------------------------------------------

struct AttentionCase {
  std::string name;
  std::vector<SeqSpec> seqs;
  int32_t block_size;
  int64_t heads, kv_heads, head_dim, v_head_dim;
  bool store_v;  // false: V is the first v_head_dim values of K (latent attention)
  int64_t window;
  float softcap;
  float scale;  // 0: 1 / sqrt(head_dim)
};

// Writes the step's K/V into a cache whose earlier positions hold random values, runs
// attention, and compares both the cache and the output with a direct computation.
void RunAttentionCase(Backend& backend, Session& s, const BackendCase& bc,
                      const AttentionCase& c) {
  SCOPED_TRACE(c.name);
  int64_t total = 0;
  for (const SeqSpec& q : c.seqs) total += (q.cached + q.new_tokens + c.block_size - 1) / c.block_size;
  const int64_t blocks = total + 3;
  const StepBatch batch = MakeBatch(c.seqs, c.block_size, blocks, 21);
  auto plan = backend.PlanStep(batch);
  ASSERT_TRUE(plan.ok());
  const int64_t t = batch.num_tokens(), d = c.head_dim, dv = c.v_head_dim;
  const int64_t k_row = c.kv_heads * d, v_row = c.kv_heads * dv;
  Vec k_cache = Random(blocks * c.block_size * k_row, 22);
  Vec v_cache = c.store_v ? Random(blocks * c.block_size * v_row, 23) : Vec{};
  KvLayer kv;
  kv.num_blocks = blocks;
  kv.block_size = c.block_size;
  kv.num_kv_heads = c.kv_heads;
  kv.head_dim = d;
  kv.v_head_dim = dv;
  kv.k = s.Kv({blocks, c.block_size, c.kv_heads, d}, k_cache);
  if (c.store_v) kv.v = s.Kv({blocks, c.block_size, c.kv_heads, dv}, v_cache);
  const Vec q = Random(t * c.heads * d, 24), k = Random(t * k_row, 25), v = Random(t * v_row, 26);
  backend.WriteKv(**plan, s.Act({t, c.kv_heads, d}, k), s.Act({t, c.kv_heads, dv}, v), kv);
  AttentionParams p;
  p.num_heads = c.heads;
  p.num_kv_heads = c.kv_heads;
  p.head_dim = d;
  p.v_head_dim = dv;
  p.scale = c.scale > 0 ? c.scale : static_cast<float>(1 / std::sqrt(double(d)));
  p.softcap = c.softcap;
  p.sliding_window = c.window;
  const Tensor out = s.ActZeros({t, c.heads, dv});
  backend.Attention(**plan, s.Act({t, c.heads, d}, q), kv, p, out);

  // Reference: the cache after the write, then attention read straight from it.
  for (int64_t tok = 0; tok < t; ++tok) {
    const int32_t slot = batch.slot_mapping[tok];
    std::copy_n(k.begin() + tok * k_row, k_row, k_cache.begin() + slot * k_row);
    if (c.store_v) std::copy_n(v.begin() + tok * v_row, v_row, v_cache.begin() + slot * v_row);
  }
  ExpectClose(s.Read(kv.k), k_cache, 0, 0, "k cache");
  if (c.store_v) ExpectClose(s.Read(kv.v), v_cache, 0, 0, "v cache");
  Vec want(t * c.heads * dv);
  const int64_t group = c.heads / c.kv_heads;
  for (int64_t sq = 0; sq < batch.num_seqs(); ++sq) {
    const int64_t n_q = batch.query_start[sq + 1] - batch.query_start[sq];
    auto slot = [&](int64_t pos) {
      return int64_t{batch.block_tables[sq * batch.max_blocks_per_seq + pos / c.block_size]} *
                 c.block_size + pos % c.block_size;
    };
    for (int64_t j = 0; j < n_q; ++j) {
      const int64_t tok = batch.query_start[sq] + j;
      const int64_t pos = batch.context_lens[sq] - n_q + j;
      const int64_t first = c.window > 0 ? std::max<int64_t>(0, pos - c.window + 1) : 0;
      for (int64_t h = 0; h < c.heads; ++h) {
        const int64_t kvh = h / group;
        std::vector<double> scores;
        double max_score = -1e300;
        for (int64_t ctx = first; ctx <= pos; ++ctx) {
          double dot = 0;
          for (int64_t i = 0; i < d; ++i) {
            dot += double{q[(tok * c.heads + h) * d + i]} * k_cache[slot(ctx) * k_row + kvh * d + i];
          }
          double score = dot * p.scale;
          if (c.softcap > 0) score = c.softcap * std::tanh(score / c.softcap);
          scores.push_back(score);
          max_score = std::max(max_score, score);
        }
        double denom = 0;
        for (double& sc : scores) denom += sc = std::exp(sc - max_score);
        for (int64_t i = 0; i < dv; ++i) {
          double acc = 0;
          for (int64_t ctx = first; ctx <= pos; ++ctx) {
            const double value = c.store_v ? v_cache[slot(ctx) * v_row + kvh * dv + i]
                                           : k_cache[slot(ctx) * k_row + kvh * d + i];
            acc += scores[ctx - first] / denom * value;
          }
          want[(tok * c.heads + h) * dv + i] = static_cast<float>(acc);
        }
      }
    }
  }
  ExpectClose(s.Read(out), want, std::max(1e-5, bc.rtol_floor), std::max(2e-6, 2 * bc.atol_floor),
              "attention");
}

TEST_P(BackendParityTest, PagedAttention) {
  const AttentionCase cases[] = {
      {"decode batch, GQA 8/2", {{1, 15}, {1, 0}, {1, 33}}, 16, 8, 2, 64, 64, true, 0, 0, 0},
      {"ragged prefill and decode", {{7, 0}, {1, 40}, {12, 9}}, 16, 4, 4, 32, 32, true, 0, 0, 0},
      {"block size 1", {{5, 3}, {2, 0}}, 1, 4, 2, 16, 16, true, 0, 0, 0},
      {"sliding window", {{9, 30}, {1, 50}}, 16, 8, 4, 16, 16, true, 5, 0, 0},
      {"softcap and scale", {{6, 20}}, 16, 8, 4, 16, 16, true, 0, 30.0f, 0.0625f},
      {"long context", {{1, 700}, {4, 650}}, 16, 4, 1, 64, 64, true, 0, 0, 0},
      {"chunked prefill", {{300, 200}}, 16, 2, 1, 32, 32, true, 0, 0, 0},
      {"latent KV (V inside K)", {{3, 10}, {1, 20}}, 16, 8, 1, 48, 32, false, 0, 0, 0.1f},
      {"latent KV, DeepSeek's 512 + 64", {{5, 30}, {1, 300}}, 16, 16, 1, 576, 512, false, 0, 0,
       0.05f},
  };
  for (const AttentionCase& c : cases) RunAttentionCase(b(), s(), GetParam(), c);
}

// ---- Mixture of experts ----------------------------------------------------------------------

// The experts of one rank, routed by `routing` over `logits` (with `raised`'s logit, when not
// negative, lifted by 5 for every token: above every other), against a double reference on the
// same route.
struct ExpertsCase {
  int64_t tokens, hidden, ffn, experts, top_k;
  int64_t expert_begin, local;  // the experts this rank holds
  int64_t raised;               // an expert every token prefers, or -1
};

void CheckExperts(Backend& b, Session& s, const BackendCase& bc, const ExpertsCase& c,
                  Vec logits, const MoeRouting& routing) {
  const int64_t tokens = c.tokens, hidden = c.hidden, ffn = c.ffn, top_k = c.top_k;
  if (c.raised >= 0) {
    for (int64_t t = 0; t < tokens; ++t) logits[t * c.experts + c.raised] += 5.0f;
  }
  const Vec x = Random(tokens * hidden, 32);
  const Tensor ids = s.Zeros(DType::kI32, {tokens, top_k});
  const Tensor weights = s.Zeros(DType::kF32, {tokens, top_k});
  b.MoeRoute(s.F32({tokens, c.experts}, logits), routing, ids, weights);
  const std::vector<int32_t> route = s.ReadI32(ids);
  const Vec route_w = s.Read(weights);
  ExpertWeights ew;
  ew.expert_begin = c.expert_begin;
  std::vector<Vec> gates, ups, downs;
  for (int e = 0; e < c.local; ++e) {
    gates.push_back(Random(ffn * hidden, 40 + e));
    ups.push_back(Random(ffn * hidden, 50 + e));
    downs.push_back(Random(hidden * ffn, 60 + e));
    ew.gate.push_back(s.W(DType::kF32, {ffn, hidden}, gates.back()));
    ew.up.push_back(s.W(DType::kF32, {ffn, hidden}, ups.back()));
    ew.down.push_back(s.W(DType::kF32, {hidden, ffn}, downs.back()));
  }
  const Tensor y = s.Zeros(DType::kF32, {tokens, hidden});
  b.MoeFfn(s.F32({tokens, hidden}, x), ids, weights, ew, y);
  // Tolerance: of sum |weight * down * act|. A backend that rounds gate, up and the activation
  // to bf16 errs by up to about (2 + |d act / d gate|) * 2^-9 of that, under 6.4e-3 for the
  // terms that matter: inside the bf16 floor of 1e-2.
  Vec want(tokens * hidden, 0.0f), scale(tokens * hidden, 0.0f);
  int64_t routed_here = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < top_k; ++j) {
      const int64_t e = route[t * top_k + j] - c.expert_begin;
      if (e < 0 || e >= c.local) continue;
      ++routed_here;
      std::vector<double> act(ffn);
      for (int64_t f = 0; f < ffn; ++f) {
        double g = 0, u = 0;
        for (int64_t i = 0; i < hidden; ++i) {
          g += double{gates[e][f * hidden + i]} * x[t * hidden + i];
          u += double{ups[e][f * hidden + i]} * x[t * hidden + i];
        }
        act[f] = g / (1 + std::exp(-g)) * u;
      }
      for (int64_t i = 0; i < hidden; ++i) {
        double out = 0, magnitude = 0;
        for (int64_t f = 0; f < ffn; ++f) {
          out += downs[e][i * ffn + f] * act[f];
          magnitude += std::fabs(downs[e][i * ffn + f] * act[f]);
        }
        want[t * hidden + i] += static_cast<float>(route_w[t * top_k + j] * out);
        scale[t * hidden + i] += static_cast<float>(std::fabs(route_w[t * top_k + j]) * magnitude);
      }
    }
  }
  EXPECT_GT(routed_here, 0);
  if (c.raised >= 0) {  // every token reached the raised expert
    for (int64_t t = 0; t < tokens; ++t) {
      EXPECT_NE(std::find(route.begin() + t * top_k, route.begin() + (t + 1) * top_k, c.raised),
                route.begin() + (t + 1) * top_k)
          << "token " << t;
    }
  }
  ExpectClose(s.Read(y), want, std::max(1e-5, bc.rtol_floor), std::max(1e-6, bc.atol_floor),
              "experts", scale);
}

TEST_P(BackendParityTest, MoeRoutingAndExperts) {
  const int64_t tokens = 9, hidden = 32, ffn = 16, experts = 8, top_k = 2;
  struct RouteCase {
    std::string name;
    MoeRouting routing;
  };
  MoeRouting softmax;
  softmax.num_experts = experts;
  softmax.top_k = top_k;
  softmax.renormalize = true;
  MoeRouting grouped = softmax;
  grouped.scoring = MoeRouting::Scoring::kSigmoid;
  grouped.renormalize = true;
  grouped.num_groups = 4;
  grouped.topk_groups = 2;
  grouped.routed_scale = 2.5f;
  const Vec correction = Random(experts, 31, -0.5, 0.5);
  const Weight correction_w = s().W(DType::kF32, {experts}, correction);
  grouped.correction_bias = &correction_w;
  MoeRouting scaled = softmax;  // DeepSeek-V2: softmax, no renormalisation, a scale
  scaled.renormalize = false;
  scaled.routed_scale = 2.5f;
  MoeRouting grouped_softmax = scaled;  // DeepSeek-V2's groups: a group's best expert
  grouped_softmax.num_groups = 4;
  grouped_softmax.topk_groups = 3;
  // DeepSeek-V3's shape, scaled down: 64 experts (two a lane of a 32-wide pass) in 8 groups, 3
  // of them kept, 6 experts a token.
  MoeRouting wide = grouped;
  wide.num_experts = 64;
  wide.top_k = 6;
  wide.num_groups = 8;
  wide.topk_groups = 3;
  const Vec wide_correction = Random(64, 34, -0.5, 0.5);
  const Weight wide_correction_w = s().W(DType::kF32, {64}, wide_correction);
  wide.correction_bias = &wide_correction_w;
  for (const RouteCase& rc : {RouteCase{"softmax renormalised", softmax},
                              RouteCase{"sigmoid grouped with bias", grouped},
                              RouteCase{"softmax scaled", scaled},
                              RouteCase{"softmax grouped", grouped_softmax},
                              RouteCase{"64 experts, sigmoid grouped with bias", wide}}) {
    SCOPED_TRACE(rc.name);
    const MoeRouting& r = rc.routing;
    const int64_t e_all = r.num_experts, k = r.top_k;
    const Vec logits = Random(tokens * e_all, e_all == experts ? 30 : 35, -2, 2);
    const Vec& bias = e_all == experts ? correction : wide_correction;
    const Tensor ids = s().Zeros(DType::kI32, {tokens, k});
    const Tensor weights = s().Zeros(DType::kF32, {tokens, k});
    b().MoeRoute(s().F32({tokens, e_all}, logits), r, ids, weights);
    const std::vector<int32_t> got_ids = s().ReadI32(ids);
    const Vec got_w = s().Read(weights);
    for (int64_t t = 0; t < tokens; ++t) {
      std::vector<double> score(e_all), choose(e_all);
      double max_l = -1e300, sum = 0;
      for (int64_t e = 0; e < e_all; ++e) max_l = std::max(max_l, double{logits[t * e_all + e]});
      for (int64_t e = 0; e < e_all; ++e) {
        const double l = logits[t * e_all + e];
        score[e] = r.scoring == MoeRouting::Scoring::kSoftmax ? std::exp(l - max_l) : 1 / (1 + std::exp(-l));
        sum += score[e];
      }
      for (int64_t e = 0; e < e_all; ++e) {
        if (r.scoring == MoeRouting::Scoring::kSoftmax) score[e] /= sum;
        choose[e] = score[e] + (r.correction_bias != nullptr ? bias[e] : 0.0);
      }
      std::vector<bool> allowed(e_all, true);
      if (r.num_groups > 1) {
        const int64_t per = e_all / r.num_groups;
        std::vector<std::pair<double, int>> groups;
        for (int g = 0; g < r.num_groups; ++g) {
          std::vector<double> m(choose.begin() + g * per, choose.begin() + (g + 1) * per);
          std::sort(m.rbegin(), m.rend());
          groups.push_back({r.scoring == MoeRouting::Scoring::kSoftmax ? -m[0] : -(m[0] + m[1]), g});
        }
        std::sort(groups.begin(), groups.end());
        std::fill(allowed.begin(), allowed.end(), false);
        for (int g = 0; g < r.topk_groups; ++g) {
          std::fill_n(allowed.begin() + groups[g].second * per, per, true);
        }
      }
      std::vector<int> order;
      for (int e = 0; e < e_all; ++e) {
        if (allowed[e]) order.push_back(e);
      }
      std::stable_sort(order.begin(), order.end(), [&](int a, int bb) { return choose[a] > choose[bb]; });
      double total = 0;
      for (int j = 0; j < k; ++j) total += score[order[j]];
      for (int j = 0; j < k; ++j) {
        EXPECT_EQ(got_ids[t * k + j], order[j]) << "token " << t;
        const double w = (r.renormalize ? score[order[j]] / total : score[order[j]]) * r.routed_scale;
        EXPECT_NEAR(got_w[t * k + j], w, 1e-6) << "token " << t;
      }
    }
  }

  const Vec logits = Random(tokens * experts, 30, -2, 2);
  // The experts this rank holds (global 2..5, each a slice of 16 columns), on the softmax route.
  CheckExperts(b(), s(), GetParam(), {tokens, hidden, ffn, experts, top_k, 2, 4, -1}, logits,
               softmax);
}

// Many tokens on one expert (its positions in several passes of a GPU block), widths that are
// no multiple of a GPU tile (72 and 136), twelve experts held of sixteen (global 3..14), four a
// token: the expert everyone picks is expert 3, whose router logit is raised by 5.
TEST_P(BackendParityTest, MoeExpertsOfManyTokensAndRaggedWidths) {
  const ExpertsCase c{150, 72, 136, 16, 4, 3, 12, 3};
  Vec logits = Random(c.tokens * c.experts, 33, -2, 2);
  MoeRouting routing;
  routing.num_experts = c.experts;
  routing.top_k = c.top_k;
  routing.renormalize = true;
  CheckExperts(b(), s(), GetParam(), c, logits, routing);
}

// ---- Sampling --------------------------------------------------------------------------------

// `got` against the host sampler on the same rows: each row's logits processors (its history,
// none when null), then SampleToken; logprobs, when asked, from the raw row.
void ExpectHostSampling(const Vec& logits, int64_t vocab, const std::vector<SamplingRow>& rows,
                        const std::vector<SampledToken>& got) {
  ASSERT_EQ(got.size(), rows.size());
  const TokenHistory none;
  for (size_t r = 0; r < rows.size(); ++r) {
    const SamplingParams& params = *rows[r].params;
    const Vec raw(logits.begin() + r * vocab, logits.begin() + (r + 1) * vocab);
    Vec row = raw;
    ApplyLogitsProcessors(absl::MakeSpan(row), params,
                          rows[r].history != nullptr ? *rows[r].history : none);
    std::vector<float> scratch;
    const int32_t want = SampleToken(row, params, rows[r].position, scratch);
    EXPECT_EQ(got[r].token, want) << "row " << r;
    EXPECT_EQ(got[r].logprobs.has_value(), params.logprobs >= 0) << "row " << r;
    if (got[r].logprobs) {
      const TokenLogprobs lp = ComputeLogprobs(raw, want, params.logprobs);
      EXPECT_NEAR(got[r].logprobs->logprob, lp.logprob, 1e-5) << "row " << r;
      EXPECT_EQ(got[r].logprobs->top_ids, lp.top_ids) << "row " << r;
    }
  }
}

TEST_P(BackendParityTest, SamplingMatchesTheHostSampler) {
  const int64_t vocab = 300;
  const int rows = 5;
  const Vec logits = Random(rows * vocab, 70, -4, 4);
  std::vector<SamplingParams> params(rows);
  params[0].temperature = 0.0f;                      // greedy
  params[1].temperature = 0.8f;                      // seeded
  params[1].seed = 7;
  params[1].top_p = 0.9f;
  params[2].temperature = 1.0f;
  params[2].top_k = 20;
  params[2].min_p = 0.05f;
  params[2].seed = 8;
  params[2].logprobs = 5;
  params[3].temperature = 0.0f;                      // penalties and bias decide
  params[3].repetition_penalty = 1.5f;
  params[3].frequency_penalty = 0.5f;
  params[3].presence_penalty = 0.3f;
  params[3].logit_bias = {{17, 2.0f}};
  params[4].temperature = 0.0f;
  params[4].logprobs = 0;
  TokenHistory history;
  for (int32_t t : {1, 5, 17, 17, 40}) history.Add(t, t != 1);
  std::vector<SamplingRow> rows_in(rows);
  for (int r = 0; r < rows; ++r) {
    rows_in[r].params = &params[r];
    rows_in[r].history = &history;
    rows_in[r].position = static_cast<uint32_t>(10 + r);
  }
  std::vector<SampledToken> got;
  ASSERT_TRUE(b().Sample(s().F32({rows, vocab}, logits), rows_in, got).ok());
  ExpectHostSampling(logits, vocab, rows_in, got);
}

// Logit bias and penalties change what every rule sees, in every mix of rows a step holds:
// greedy and seeded rows with and without them, a repeated bias id (its biases add in list
// order), bias ids outside the vocabulary (dropped), penalties without a history (nothing to
// penalise), and a logprobs row beside them. A device backend edits a copy of the row, so the
// logprobs of a penalised row are still those of the raw logits.
TEST_P(BackendParityTest, BiasAndPenaltiesBeforeEveryRule) {
  const int64_t vocab = 2000;
  const int rows = 9;
  const Vec logits = Random(rows * vocab, 73, -5, 5);
  std::vector<SamplingParams> params(rows);
  for (SamplingParams& p : params) p.temperature = 0.0f;
  params[0].logit_bias = {{1234, 30.0f}, {7, 2.0f}, {1234, -20.5f}, {1234, 0.7f}};
  params[1].repetition_penalty = 1.8f;
  params[2].temperature = 0.9f;
  params[2].top_p = 0.9f;
  params[2].frequency_penalty = 1.5f;
  params[2].presence_penalty = 0.5f;
  params[3].temperature = 1.0f;
  params[3].top_k = 30;
  params[3].min_p = 0.02f;
  params[3].repetition_penalty = 0.6f;
  params[3].frequency_penalty = -0.4f;
  params[3].presence_penalty = 1.0f;
  params[3].logit_bias = {{-1, 5.0f}, {static_cast<int32_t>(vocab + 3), 5.0f}, {11, -100.0f}};
  params[5].temperature = 0.7f;  // rows 4 and 5: nothing to edit
  params[6].repetition_penalty = 1.3f;
  params[6].logit_bias = {{99, 4.0f}};
  params[6].logprobs = 3;
  params[7].frequency_penalty = 2.0f;  // no history: nothing to penalise
  params[7].logit_bias = {{5, 1.5f}};
  params[8].temperature = 1.3f;
  params[8].top_k = 2;
  params[8].logit_bias = {{1999, 100.0f}};
  TokenHistory history;
  for (int32_t t = 0; t < 400; t += 3) history.Add(t, t % 2 == 0);
  for (int32_t t : {30, 30, 30, 1500, 1500}) history.Add(t, true);
  std::vector<SamplingRow> rows_in(rows);
  for (int r = 0; r < rows; ++r) {
    params[r].seed = 100 + r;
    rows_in[r].params = &params[r];
    rows_in[r].history = r == 7 ? nullptr : &history;
    rows_in[r].position = static_cast<uint32_t>(40 + r);
  }
  std::vector<SampledToken> got;
  ASSERT_TRUE(b().Sample(s().F32({rows, vocab}, logits), rows_in, got).ok());
  ExpectHostSampling(logits, vocab, rows_in, got);
  ASSERT_EQ(got.size(), static_cast<size_t>(rows));
  EXPECT_EQ(got[0].token, 1234) << "the bias decides the greedy row";
  EXPECT_EQ(got[8].token, 1999) << "the bias decides the top-2 row";
}

// A row that is not a distribution (a numerical blow-up in one sequence) is flagged alone;
// the rows beside it sample as usual. -infinity entries (masked tokens) are fine.
TEST_P(BackendParityTest, NonFiniteRowsAreFlaggedAlone) {
  const int64_t vocab = 64;
  const int rows = 5;
  Vec logits = Random(rows * vocab, 71, -4, 4);
  const float inf = std::numeric_limits<float>::infinity();
  logits[1 * vocab + 9] = std::numeric_limits<float>::quiet_NaN();
  logits[2 * vocab + 30] = inf;
  for (int64_t v = 0; v < vocab; ++v) logits[3 * vocab + v] = -inf;
  logits[4 * vocab + 5] = -inf;  // one masked token: a distribution still
  std::vector<SamplingParams> params(rows);
  for (SamplingParams& p : params) {
    p.temperature = 0.0f;
    p.logprobs = 2;
  }
  TokenHistory history;
  std::vector<SamplingRow> rows_in(rows);
  for (int r = 0; r < rows; ++r) {
    rows_in[r].params = &params[r];
    rows_in[r].history = &history;
    rows_in[r].position = 3;
  }
  std::vector<SampledToken> got;
  ASSERT_TRUE(b().Sample(s().F32({rows, vocab}, logits), rows_in, got).ok());
  ASSERT_EQ(got.size(), static_cast<size_t>(rows));
  for (int r : {1, 2, 3}) {
    EXPECT_EQ(got[r].token, kNonFiniteLogits) << "row " << r;
    EXPECT_FALSE(got[r].logprobs.has_value()) << "row " << r;
  }
  for (int r : {0, 4}) {
    const auto row = absl::MakeConstSpan(logits).subspan(r * vocab, vocab);
    const int64_t argmax = std::max_element(row.begin(), row.end()) - row.begin();
    EXPECT_EQ(got[r].token, argmax) << "row " << r;
    ASSERT_TRUE(got[r].logprobs.has_value()) << "row " << r;
    EXPECT_TRUE(std::isfinite(got[r].logprobs->logprob)) << "row " << r;
  }
}

// Greedy rows without bias, penalties or logprobs (a device backend decides these where the
// logits are), beside a seeded row: ties go to the lowest id, rows that are not distributions
// are flagged, and the seeded row draws what the host sampler draws.
TEST_P(BackendParityTest, GreedyRowsTiesAndNonFiniteBesideASeededRow) {
  const int64_t vocab = 1000;
  const int rows = 7;
  Vec logits = Random(rows * vocab, 72, -4, 4);
  const float inf = std::numeric_limits<float>::infinity();
  logits[0 * vocab + 700] = logits[0 * vocab + 300] = 9.0f;  // a tie: 300 wins
  logits[1 * vocab + 999] = 9.5f;                            // the last id
  logits[2 * vocab + 4] = std::numeric_limits<float>::quiet_NaN();
  logits[3 * vocab + 500] = inf;
  for (int64_t v = 0; v < vocab; ++v) logits[4 * vocab + v] = -inf;
  for (int64_t v = 0; v < vocab; v += 2) logits[5 * vocab + v] = -inf;  // masked tokens
  std::vector<SamplingParams> params(rows);
  for (SamplingParams& p : params) p.temperature = 0.0f;
  params[6].temperature = 0.9f;
  params[6].seed = 11;
  params[6].top_k = 50;
  TokenHistory history;
  std::vector<SamplingRow> rows_in(rows);
  for (int r = 0; r < rows; ++r) {
    rows_in[r].params = &params[r];
    rows_in[r].history = &history;
    rows_in[r].position = static_cast<uint32_t>(20 + r);
  }
  std::vector<SampledToken> got;
  ASSERT_TRUE(b().Sample(s().F32({rows, vocab}, logits), rows_in, got).ok());
  ASSERT_EQ(got.size(), static_cast<size_t>(rows));
  EXPECT_EQ(got[0].token, 300);
  EXPECT_EQ(got[1].token, 999);
  for (int r : {2, 3, 4}) EXPECT_EQ(got[r].token, kNonFiniteLogits) << "row " << r;
  const auto row5 = absl::MakeConstSpan(logits).subspan(5 * vocab, vocab);
  EXPECT_EQ(got[5].token, std::max_element(row5.begin(), row5.end()) - row5.begin());
  std::vector<float> scratch;
  const Vec row6(logits.begin() + 6 * vocab, logits.end());
  EXPECT_EQ(got[6].token, SampleToken(row6, params[6], rows_in[6].position, scratch));
  for (const SampledToken& t : got) EXPECT_FALSE(t.logprobs.has_value());
}

// A backend refuses what does not fit and says so at the step's Sync, and keeps working.
TEST_P(BackendParityTest, ShapeErrorsSurfaceAtSync) {
  const Weight w = s().W(DType::kF32, {8, 16}, Random(8 * 16, 80));
  b().MatMul(s().F32({2, 12}, Random(24, 81)), w, nullptr, s().Zeros(DType::kF32, {2, 8}));
  EXPECT_EQ(b().Sync().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(b().Sync().ok());  // the error was reported once
  b().MatMul(s().F32({2, 16}, Random(32, 82)), w, nullptr, s().Zeros(DType::kF32, {2, 8}));
  EXPECT_TRUE(b().Sync().ok());
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendParityTest, ::testing::ValuesIn(Backends()),
                         [](const auto& p) { return p.param.name; });

}  // namespace
}  // namespace strata

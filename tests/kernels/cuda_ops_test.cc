// The CUDA element-wise kernels against the CPU's formulas (reference_ops.h and kernels/cpu's
// scalar functions), for f32 and bf16 activations. The references run on the inputs as the
// device sees them (rounded to bf16 where the type is bf16). Tolerances: f32 1e-5 relative
// (+1e-6; the GPU's expf, tanhf and sincosf differ from glibc's by a few ulp); bf16 one rounding
// of the result, 8e-3 relative (+1e-3 of the row scale for norms). Skips without a device.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/philox.h"
#include "gtest/gtest.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/reference_ops.h"
#include "kernels/cuda/ops.h"
#include "tests/kernels/isa_test_util.h"
#include "worker/sampling/sampler.h"

namespace strata::kernels {
namespace {

using cuda::Elem;
using Vec = std::vector<float>;

bool HaveDevice() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

float RoundBf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }
Vec Rounded(const Vec& v, Elem elem) {
  if (elem == Elem::kF32) return v;
  Vec out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = RoundBf16(v[i]);
  return out;
}
const char* Name(Elem elem) { return elem == Elem::kF32 ? "f32" : "bf16"; }

// Device memory holding values of an element type, freed on destruction.
class DeviceValues {
 public:
  DeviceValues(const Vec& host, Elem elem) : elem_(elem), n_(host.size()) {
    const size_t bytes = n_ * Size();
    EXPECT_EQ(cudaMalloc(&ptr_, bytes == 0 ? 4 : bytes), cudaSuccess);
    if (elem == Elem::kF32) {
      cudaMemcpy(ptr_, host.data(), bytes, cudaMemcpyHostToDevice);
    } else {
      std::vector<__nv_bfloat16> b(n_);
      for (size_t i = 0; i < n_; ++i) b[i] = __float2bfloat16_rn(host[i]);
      cudaMemcpy(ptr_, b.data(), bytes, cudaMemcpyHostToDevice);
    }
  }
  ~DeviceValues() { cudaFree(ptr_); }
  DeviceValues(const DeviceValues&) = delete;
  DeviceValues& operator=(const DeviceValues&) = delete;

  void* get() const { return ptr_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  Vec ToHost() const {
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    Vec out(n_);
    if (elem_ == Elem::kF32) {
      cudaMemcpy(out.data(), ptr_, n_ * 4, cudaMemcpyDeviceToHost);
    } else {
      std::vector<__nv_bfloat16> b(n_);
      cudaMemcpy(b.data(), ptr_, n_ * 2, cudaMemcpyDeviceToHost);
      for (size_t i = 0; i < n_; ++i) out[i] = __bfloat162float(b[i]);
    }
    return out;
  }

 private:
  size_t Size() const { return elem_ == Elem::kF32 ? 4 : 2; }
  void* ptr_ = nullptr;
  Elem elem_;
  size_t n_;
};

// Device copies of f32 / i32 tables.
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& host) {
    EXPECT_EQ(cudaMalloc(&ptr_, host.size() * sizeof(T) + 4), cudaSuccess);
    cudaMemcpy(ptr_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
  }
  ~DeviceArray() { cudaFree(ptr_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  const T* get() const { return ptr_; }
  T* get() { return ptr_; }
  std::vector<T> ToHost(size_t n) const {
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<T> out(n);
    cudaMemcpy(out.data(), ptr_, n * sizeof(T), cudaMemcpyDeviceToHost);
    return out;
  }

 private:
  T* ptr_ = nullptr;
};

class CudaOpsTest : public ::testing::TestWithParam<Elem> {
 protected:
  void SetUp() override {
    if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
  }
  Elem elem() const { return GetParam(); }
  float rtol() const { return elem() == Elem::kF32 ? 1e-5f : 8e-3f; }
  float atol() const { return elem() == Elem::kF32 ? 1e-6f : 1e-4f; }
  void Expect(const Vec& got, const Vec& want, const std::string& what, const Vec& scale = {}) {
    cpu::ExpectClose(got, want, scale, rtol(), atol(), std::string(Name(elem())) + " " + what);
  }
};

TEST_P(CudaOpsTest, RmsNormAndLayerNormWithFusedAdd) {
  for (int64_t dim : {1, 31, 256, 4099}) {
    for (bool layer : {false, true}) {
      for (bool fused : {false, true}) {
        const int64_t rows = 5;
        const std::string what = "dim=" + std::to_string(dim) + (layer ? " layer" : " rms") +
                                 (fused ? " +add" : "");
        const Vec x = Rounded(cpu::RandomFloats(rows * dim, 1, -3.0f, 3.0f), elem());
        const Vec delta = Rounded(cpu::RandomFloats(rows * dim, 2), elem());
        const Vec w = cpu::RandomFloats(dim, 3), b = cpu::RandomFloats(dim, 4);
        Vec residual = x;
        if (fused) {
          for (size_t i = 0; i < x.size(); ++i) residual[i] = x[i] + delta[i];
          residual = Rounded(residual, elem());
        }
        Vec want(rows * dim);
        if (layer) {
          cpu::LayerNorm(residual.data(), w.data(), b.data(), rows, dim, 1e-5f, want.data());
        } else {
          cpu::reference::RmsNorm(residual.data(), w.data(), rows, dim, 1e-5f, want.data());
        }
        DeviceValues dx(x, elem()), dd(delta, elem()), dy(Vec(rows * dim), elem());
        DeviceArray<float> dw(w), db(b);
        cuda::NormParams p;
        p.x = dx.get();
        p.delta = fused ? dd.get() : nullptr;
        p.weight = dw.get();
        p.bias = layer ? db.get() : nullptr;
        p.y = dy.get();
        p.rows = rows;
        p.dim = dim;
        p.layer_norm = layer;
        p.elem = elem();
        ASSERT_TRUE(cuda::LaunchNorm(p, nullptr).ok());
        Vec scale(want.size());
        for (size_t i = 0; i < want.size(); ++i) scale[i] = std::fabs(want[i]) + 1.0f;
        Expect(dy.ToHost(), want, what, scale);
        if (fused) Expect(dx.ToHost(), residual, what + " residual");
      }
    }
  }
}

TEST_P(CudaOpsTest, RopeLayoutsAndLongTable) {
  const int64_t tokens = 4, heads = 3, head_dim = 128;
  const std::vector<int32_t> positions = {0, 1, 77, 8191};
  const std::vector<int32_t> token_seq = {0, 0, 1, 1};
  const std::vector<int32_t> context_lens = {2, 9000};  // sequence 1 is past the threshold
  for (bool interleaved : {false, true}) {
    for (int64_t rotary_dim : {int64_t{64}, head_dim}) {
      Vec inv_freq(rotary_dim / 2), long_freq(rotary_dim / 2);
      for (int64_t i = 0; i < rotary_dim / 2; ++i) {
        inv_freq[i] = 1.0f / std::pow(10000.0f, 2.0f * i / rotary_dim);
        long_freq[i] = inv_freq[i] / 4.0f;
      }
      const Vec x = Rounded(cpu::RandomFloats(tokens * heads * head_dim, 3), elem());
      const RopeLayout layout = interleaved ? RopeLayout::kInterleaved : RopeLayout::kHalfSplit;
      Vec want = x;
      const int64_t row = heads * head_dim;
      cpu::reference::ApplyRope(want.data(), 2, heads, head_dim, positions.data(),
                                inv_freq.data(), rotary_dim, layout, 1.1f);
      cpu::reference::ApplyRope(want.data() + 2 * row, 2, heads, head_dim, positions.data() + 2,
                                long_freq.data(), rotary_dim, layout, 1.3f);
      DeviceValues dx(x, elem());
      DeviceArray<float> dfreq(inv_freq), dlong(long_freq);
      DeviceArray<int32_t> dpos(positions), dseq(token_seq), dctx(context_lens);
      cuda::RopeParams p;
      p.x = dx.get();
      p.positions = dpos.get();
      p.inv_freq = dfreq.get();
      p.long_inv_freq = dlong.get();
      p.token_seq = dseq.get();
      p.context_lens = dctx.get();
      p.long_threshold = 4096;
      p.mscale = 1.1f;
      p.long_mscale = 1.3f;
      p.num_tokens = tokens;
      p.num_heads = heads;
      p.head_dim = head_dim;
      p.rotary_dim = rotary_dim;
      p.interleaved = interleaved;
      p.elem = elem();
      ASSERT_TRUE(cuda::LaunchRope(p, nullptr).ok());
      Expect(dx.ToHost(), want, "rotary_dim=" + std::to_string(rotary_dim));
    }
  }
}

TEST_P(CudaOpsTest, GatedActivations) {
  for (cuda::Act act : {cuda::Act::kSilu, cuda::Act::kGeluTanh, cuda::Act::kGeluErf}) {
    for (int64_t n : {1, 1000, 1 << 20}) {
      const Vec gate = Rounded(cpu::RandomFloats(n, 4, -10.0f, 10.0f), elem());
      const Vec up = Rounded(cpu::RandomFloats(n, 5), elem());
      Vec want(n);
      if (act == cuda::Act::kSilu) {
        cpu::reference::SiluMul(gate.data(), up.data(), n, want.data());
      } else {
        cpu::GeluMul(gate.data(), up.data(), n, act == cuda::Act::kGeluTanh, want.data());
      }
      DeviceValues dg(gate, elem()), du(up, elem()), dout(Vec(n), elem());
      cuda::GatedActParams p{dg.get(), du.get(), dout.get(), n, act, elem()};
      ASSERT_TRUE(cuda::LaunchGatedAct(p, nullptr).ok());
      Expect(dout.ToHost(), want, "act " + std::to_string(static_cast<int>(act)) + " n=" +
                                      std::to_string(n));
    }
  }
}

TEST_P(CudaOpsTest, InPlaceUpdates) {
  using Op = cuda::UpdateParams::Op;
  const int64_t rows = 7, cols = 300, n = rows * cols;
  const Vec x = Rounded(cpu::RandomFloats(n, 6, -40.0f, 40.0f), elem());
  const Vec y = Rounded(cpu::RandomFloats(n, 7), elem());
  const Vec bias = cpu::RandomFloats(cols, 8);
  for (Op op : {Op::kAct, Op::kAdd, Op::kSoftcap, Op::kBias}) {
    Vec want = x;
    if (op == Op::kAct) cpu::GeluInPlace(want.data(), n, true);
    if (op == Op::kAdd) cpu::AddInPlace(want.data(), y.data(), n);
    if (op == Op::kSoftcap) cpu::Softcap(want.data(), n, 30.0f);
    if (op == Op::kBias) cpu::AddBias(want.data(), bias.data(), rows, cols);
    DeviceValues dx(x, elem()), dy(y, elem());
    DeviceArray<float> db(bias);
    cuda::UpdateParams p;
    p.op = op;
    p.x = dx.get();
    p.y = dy.get();
    p.bias = db.get();
    p.n = n;
    p.cols = cols;
    p.cap = 30.0f;
    p.act = cuda::Act::kGeluTanh;
    p.elem = elem();
    ASSERT_TRUE(cuda::LaunchUpdate(p, nullptr).ok());
    Expect(dx.ToHost(), want, "op " + std::to_string(static_cast<int>(op)));
  }
}

TEST_P(CudaOpsTest, EmbeddingGatherAndKvWrites) {
  // Embedding from a bf16 table, tokens outside this vocabulary slice give zeros.
  const int64_t rows = 50, dim = 96, vocab_begin = 100;
  const Vec table = Rounded(cpu::RandomFloats(rows * dim, 9), Elem::kBf16);
  const std::vector<int32_t> tokens = {100, 149, 99, 150, 120};
  Vec want(tokens.size() * dim, 0.0f);
  for (size_t t = 0; t < tokens.size(); ++t) {
    const int64_t id = tokens[t] - vocab_begin;
    if (id < 0 || id >= rows) continue;
    for (int64_t i = 0; i < dim; ++i) want[t * dim + i] = table[id * dim + i] * 0.5f;
  }
  DeviceValues dtable(table, Elem::kBf16), dout(Vec(want.size(), 7.0f), elem());
  DeviceArray<int32_t> dtokens(tokens);
  cuda::EmbeddingParams e{dtokens.get(), dtable.get(), dout.get(), static_cast<int64_t>(tokens.size()),
                          rows, dim, vocab_begin, 0.5f, elem()};
  ASSERT_TRUE(cuda::LaunchEmbedding(e, nullptr).ok());
  Expect(dout.ToHost(), want, "embedding");

  // Gather rows 4, 0, 4 of the embedding output.
  const std::vector<int32_t> pick = {4, 0, 4};
  DeviceArray<int32_t> dpick(pick);
  DeviceValues gathered(Vec(pick.size() * dim), elem());
  cuda::GatherRowsParams g{dout.get(), gathered.get(), dpick.get(), 3,
                           dim * (elem() == Elem::kF32 ? 4 : 2)};
  ASSERT_TRUE(cuda::LaunchGatherRows(g, nullptr).ok());
  Vec want_rows;
  for (int32_t r : pick) want_rows.insert(want_rows.end(), want.begin() + r * dim, want.begin() + (r + 1) * dim);
  Expect(gathered.ToHost(), want_rows, "gather");

  // KV writes into a bf16 cache of 4 blocks of 2 slots, 2 heads of 64 (V of 32).
  const int64_t kv_heads = 2, hd = 64, vd = 32, slots = 8;
  const std::vector<int32_t> slot_mapping = {5, 0, 7};
  const Vec k = Rounded(cpu::RandomFloats(3 * kv_heads * hd, 10), elem());
  const Vec v = Rounded(cpu::RandomFloats(3 * kv_heads * vd, 11), elem());
  Vec k_want(slots * kv_heads * hd, 0.0f), v_want(slots * kv_heads * vd, 0.0f);
  for (int t = 0; t < 3; ++t) {
    for (int64_t i = 0; i < kv_heads * hd; ++i) {
      k_want[slot_mapping[t] * kv_heads * hd + i] = RoundBf16(k[t * kv_heads * hd + i]);
    }
    for (int64_t i = 0; i < kv_heads * vd; ++i) {
      v_want[slot_mapping[t] * kv_heads * vd + i] = RoundBf16(v[t * kv_heads * vd + i]);
    }
  }
  DeviceValues dk(k, elem()), dv(v, elem());
  DeviceValues kc(Vec(k_want.size()), Elem::kBf16), vc(Vec(v_want.size()), Elem::kBf16);
  DeviceArray<int32_t> dslots(slot_mapping);
  cuda::WriteKvParams w{dk.get(), dv.get(), kc.get(), vc.get(), dslots.get(), 3, kv_heads, hd, vd, elem()};
  ASSERT_TRUE(cuda::LaunchWriteKv(w, nullptr).ok());
  EXPECT_EQ(kc.ToHost(), k_want);
  EXPECT_EQ(vc.ToHost(), v_want);
}

// KV writes into an fp8 cache: each (token, KV head) row's codes and scale exactly as the host
// computes them from the row's values (common/dtype.h: scale = amax / 448, code = the nearest
// e4m3 of value / scale, saturated), rows of very different magnitudes, a zero row, and a row
// with one outlier; V of another head dim. The codes decode within e4m3's half step of the
// values.
TEST_P(CudaOpsTest, Fp8KvWrites) {
  const int64_t kv_heads = 2, hd = 64, vd = 32, slots = 8, tokens = 3;
  const std::vector<int32_t> slot_mapping = {6, 1, 3};
  Vec k = cpu::RandomFloats(tokens * kv_heads * hd, 12);
  Vec v = cpu::RandomFloats(tokens * kv_heads * vd, 13);
  for (int64_t i = 0; i < hd; ++i) k[i] *= 1e-3f;          // token 0, head 0: small
  for (int64_t i = hd; i < 2 * hd; ++i) k[i] *= 300.0f;    // token 0, head 1: large
  for (int64_t i = 2 * hd; i < 3 * hd; ++i) k[i] = 0.0f;   // token 1, head 0: zeros
  k[3 * hd + 5] = 1000.0f;                                 // token 1, head 1: an outlier
  k = Rounded(k, elem());
  v = Rounded(v, elem());
  auto expect = [&](const Vec& x, int64_t dim, std::vector<uint8_t>& codes, Vec& scales) {
    codes.assign(slots * kv_heads * dim, 0);
    scales.assign(slots * kv_heads, 0.0f);
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t h = 0; h < kv_heads; ++h) {
        const float* row = x.data() + (t * kv_heads + h) * dim;
        float amax = 0.0f;
        for (int64_t i = 0; i < dim; ++i) amax = std::max(amax, std::fabs(row[i]));
        float scale = amax / kF8E4M3Max;
        if (!(scale > 0.0f)) scale = 1.0f;
        const int64_t dst = slot_mapping[t] * kv_heads + h;
        scales[dst] = scale;
        for (int64_t i = 0; i < dim; ++i) {
          codes[dst * dim + i] = F32ToF8E4M3(row[i] / scale);
          EXPECT_NEAR(F8E4M3ToF32(codes[dst * dim + i]) * scale, row[i],
                      std::fabs(row[i]) / 16 + scale * std::ldexp(1.0f, -10))
              << "token " << t << " head " << h << " dim " << i;
        }
      }
    }
  };
  std::vector<uint8_t> k_codes, v_codes;
  Vec k_scales, v_scales;
  expect(k, hd, k_codes, k_scales);
  expect(v, vd, v_codes, v_scales);
  DeviceValues dk(k, elem()), dv(v, elem());
  DeviceArray<uint8_t> kc(std::vector<uint8_t>(k_codes.size(), 0)), vc(std::vector<uint8_t>(v_codes.size(), 0));
  DeviceValues ks(Vec(k_scales.size(), 0.0f), Elem::kF32), vs(Vec(v_scales.size(), 0.0f), Elem::kF32);
  DeviceArray<int32_t> dslots(slot_mapping);
  cuda::WriteKvParams w{dk.get(), dv.get(), const_cast<uint8_t*>(kc.get()), const_cast<uint8_t*>(vc.get()),
                        dslots.get(), tokens, kv_heads, hd, vd, elem()};
  w.fp8 = true;
  w.k_scale = ks.as<float>();
  w.v_scale = vs.as<float>();
  ASSERT_TRUE(cuda::LaunchWriteKv(w, nullptr).ok());
  EXPECT_EQ(ks.ToHost(), k_scales);
  EXPECT_EQ(vs.ToHost(), v_scales);
  std::vector<uint8_t> got(k_codes.size());
  ASSERT_EQ(cudaMemcpy(got.data(), kc.get(), got.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(got, k_codes);
  got.resize(v_codes.size());
  ASSERT_EQ(cudaMemcpy(got.data(), vc.get(), got.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(got, v_codes);
  w.v_scale = nullptr;
  EXPECT_FALSE(cuda::LaunchWriteKv(w, nullptr).ok()) << "an fp8 cache without its V scales";
}

INSTANTIATE_TEST_SUITE_P(Elems, CudaOpsTest, ::testing::Values(Elem::kF32, Elem::kBf16),
                         [](const auto& param_info) { return std::string(Name(param_info.param)); });

// The experts' grouped matmul: expert 0 holds one position, expert 1 130 (three passes of a
// block's 64), over widths that end inside a tile (k 200, n 72), both experts sharing one
// weight. Every position against a double reference on the bf16-rounded inputs; and the row
// that both experts read (position 0, alone; position 77, in a crowd) gets the same bits from
// both: a row's products do not depend on where or beside what it is computed.
TEST_P(CudaOpsTest, MoeMatMulRowsDoNotDependOnTheirPositions) {
  const int64_t k = 200, n = 72, positions = 131, shared_row = 5;
  const std::vector<int32_t> offsets = {0, 1, positions};
  // The plan's tiles, as LaunchMoePlan lays them out: (expert, first position of the pass).
  const std::vector<int32_t> tiles = {0, 0, 1, 0, 1, 64, 1, 128}, chunk_tiles = {0, 4};
  std::vector<int32_t> rows(positions);
  for (int32_t p = 0; p < positions; ++p) rows[p] = p;
  rows[0] = rows[77] = shared_row;
  const Vec a = Rounded(cpu::RandomFloats(positions * k, 20), elem());
  const Vec w = Rounded(cpu::RandomFloats(n * k, 21), Elem::kBf16);
  const Vec up = Rounded(cpu::RandomFloats(n * k, 22), Elem::kBf16);
  DeviceValues da(a, elem()), dw(w, Elem::kBf16), dup(up, Elem::kBf16);
  DeviceArray<int32_t> doffsets(offsets), drows(rows), dtiles(tiles), dchunks(chunk_tiles);
  for (const bool gated : {false, true}) {
    const Elem out_elem = gated ? elem() : Elem::kF32;
    DeviceValues dout(Vec(positions * n, 7.0f), out_elem);
    cuda::MoeMatMulParams p;
    p.a = da.get();
    p.a_rows = drows.get();
    p.offsets = doffsets.get();
    p.tiles = dtiles.get();
    p.chunk_tiles = dchunks.get();
    p.num_slots = positions;
    p.w[0] = p.w[1] = dw.get();
    p.up[0] = p.up[1] = dup.get();
    p.out = dout.get();
    p.num_experts = 2;
    p.n = n;
    p.k = k;
    p.gated = gated;
    p.act = cuda::Act::kSilu;
    p.a_elem = elem();
    p.out_elem = out_elem;
    ASSERT_TRUE(cuda::LaunchMoeMatMul(p, nullptr).ok());
    const Vec got = dout.ToHost();
    Vec want(positions * n), scale(positions * n);
    for (int64_t pos = 0; pos < positions; ++pos) {
      const float* x = a.data() + rows[pos] * k;
      for (int64_t c = 0; c < n; ++c) {
        double g = 0, u = 0, g_size = 0, u_size = 0;
        for (int64_t i = 0; i < k; ++i) {
          const double xi = RoundBf16(x[i]);  // the kernel's operands are bf16
          g += xi * w[c * k + i];
          u += xi * up[c * k + i];
          g_size += std::fabs(xi * w[c * k + i]);
          u_size += std::fabs(xi * up[c * k + i]);
        }
        const double silu = g / (1 + std::exp(-g));
        want[pos * n + c] = static_cast<float>(gated ? silu * u : g);
        // Plain: of sum |x w| (f32 sums). Gated: rounding g moves silu(g) by up to
        // 1.1 |g| ulp, rounding u and the result move it by |silu(g) u| ulp each; the f32 sums
        // add 1e-3 of the sizes (a tenth of an ulp of bf16 at 8e-3).
        scale[pos * n + c] = static_cast<float>(
            gated ? (1.1 * std::fabs(g) + 2 * std::fabs(silu)) * std::fabs(u) +
                        1e-3 * (g_size * std::fabs(u) + std::fabs(silu) * u_size)
                  : g_size);
      }
    }
    cpu::ExpectClose(got, want, scale, gated ? rtol() : 1e-5f, atol(),
                     std::string(Name(elem())) + (gated ? " gated" : " plain"));
    EXPECT_EQ(std::memcmp(got.data(), got.data() + 77 * n, n * sizeof(float)), 0)
        << "one row, computed alone and among 130 positions";
  }
}

// The experts' plan for 300 local experts (global 10..309, two launch chunks) of 320, 500
// tokens routed to 4 distinct experts each: offsets are the counts' prefix sums, every local
// slot has a position of its expert's range holding its token (each once), the others -1, and
// the tiles list every expert's passes of 64, the second chunk's from where the first's end.
TEST(CudaOpsMoePlan, PositionsAndTilesCoverEveryLocalSlotOnce) {
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
  const int64_t tokens = 500, top_k = 4, begin = 10, local = 300, slots = tokens * top_k;
  std::mt19937 random(12);
  std::vector<int32_t> ids;
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<int32_t> chosen;
    while (static_cast<int64_t>(chosen.size()) < top_k) {
      // Skewed: expert 10 (local 0) in most tokens, so it needs several passes.
      const auto id = static_cast<int32_t>(chosen.empty() && t % 5 != 0 ? 10 : random() % 320);
      if (std::find(chosen.begin(), chosen.end(), id) == chosen.end()) chosen.push_back(id);
    }
    ids.insert(ids.end(), chosen.begin(), chosen.end());
  }
  const int64_t max_tiles = cuda::MoeMaxTiles(slots, local);
  DeviceArray<int32_t> dids(ids), offsets(std::vector<int32_t>(local + 1, -7)),
      rows(std::vector<int32_t>(slots, -7)), positions(std::vector<int32_t>(slots, -7)),
      tiles(std::vector<int32_t>(2 * max_tiles, -7)), chunk_tiles(std::vector<int32_t>(3, -7));
  cuda::MoePlanParams p{dids.get(), offsets.get(), rows.get(), positions.get(), tiles.get(),
                        chunk_tiles.get(), slots, top_k, begin, local};
  ASSERT_TRUE(cuda::LaunchMoePlan(p, nullptr).ok());
  const auto got_offsets = offsets.ToHost(local + 1);
  const auto got_rows = rows.ToHost(slots);
  const auto got_positions = positions.ToHost(slots);
  const auto got_tiles = tiles.ToHost(2 * max_tiles);
  const auto got_chunks = chunk_tiles.ToHost(3);
  std::vector<int32_t> counts(local, 0);
  for (int32_t id : ids) {
    if (id >= begin && id < begin + local) ++counts[id - begin];
  }
  EXPECT_GT(counts[0], 3 * 64);
  int32_t at = 0;
  for (int64_t e = 0; e <= local; ++e) {
    EXPECT_EQ(got_offsets[e], at) << "expert " << e;
    if (e < local) at += counts[e];
  }
  std::vector<int> seen(slots, 0);
  for (int64_t s = 0; s < slots; ++s) {
    const int64_t e = ids[s] - begin;
    if (e < 0 || e >= local) {
      EXPECT_EQ(got_positions[s], -1) << "slot " << s;
      continue;
    }
    const int32_t pos = got_positions[s];
    ASSERT_GE(pos, got_offsets[e]) << "slot " << s;
    ASSERT_LT(pos, got_offsets[e + 1]) << "slot " << s;
    EXPECT_EQ(got_rows[pos], s / top_k) << "slot " << s;
    ++seen[pos];
  }
  for (int32_t pos = 0; pos < at; ++pos) EXPECT_EQ(seen[pos], 1) << "position " << pos;
  std::vector<int32_t> want_tiles, want_chunks = {0};
  for (int32_t e = 0; e < local; ++e) {
    if (e == cuda::kMaxMoeLaunchExperts) {
      want_chunks.push_back(static_cast<int32_t>(want_tiles.size() / 2));
    }
    for (int32_t row0 = 0; row0 < counts[e]; row0 += cuda::kMoeTileRows) {
      want_tiles.insert(want_tiles.end(), {e, row0});
    }
  }
  want_chunks.push_back(static_cast<int32_t>(want_tiles.size() / 2));
  EXPECT_EQ(got_chunks, want_chunks);
  ASSERT_LE(want_tiles.size(), got_tiles.size());
  EXPECT_EQ(std::vector<int32_t>(got_tiles.begin(), got_tiles.begin() + want_tiles.size()),
            want_tiles);
}

TEST(CudaOpsConvert, RoundsToNearestEven) {
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
  const Vec x = cpu::RandomFloats(1000, 12, -100.0f, 100.0f);
  DeviceValues src(x, Elem::kF32), dst(Vec(x.size()), Elem::kBf16);
  ASSERT_TRUE(cuda::LaunchConvert({src.get(), Elem::kF32, dst.get(), Elem::kBf16, 1000}, nullptr).ok());
  EXPECT_EQ(dst.ToHost(), Rounded(x, Elem::kBf16));
}

// The lowest id of the largest value, -1 for rows with a NaN or +inf or nothing finite.
TEST(CudaOpsGreedy, MatchesTheHostArgmax) {
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
  for (int64_t vocab : {1, 7, 300, 128256}) {
    const int64_t rows = 6;
    Vec logits = cpu::RandomFloats(rows * vocab, 13, -5.0f, 5.0f);
    if (vocab > 2) logits[vocab - 1] = logits[1] = 50.0f;  // row 0: a tie, id 1 wins
    logits[1 * vocab + vocab / 2] = std::nanf("");
    logits[2 * vocab] = INFINITY;
    for (int64_t i = 0; i < vocab; ++i) logits[3 * vocab + i] = -INFINITY;
    DeviceArray<float> dl(logits);
    int32_t* tokens = nullptr;
    ASSERT_EQ(cudaMalloc(&tokens, rows * 4), cudaSuccess);
    ASSERT_TRUE(cuda::LaunchGreedy({dl.get(), tokens, rows, vocab, -1}, nullptr).ok());
    std::vector<int32_t> got(rows);
    ASSERT_EQ(cudaMemcpy(got.data(), tokens, rows * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    cudaFree(tokens);
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = logits.data() + r * vocab;
      bool bad = false, finite = false;
      int32_t best = 0;
      for (int64_t i = 0; i < vocab; ++i) {
        bad = bad || std::isnan(row[i]) || row[i] == INFINITY;
        finite = finite || std::isfinite(row[i]);
        if (row[i] > row[best]) best = static_cast<int32_t>(i);
      }
      EXPECT_EQ(got[r], bad || !finite ? -1 : best) << "vocab " << vocab << " row " << r;
    }
  }
}

// The device's logits processors equal the host's bit for bit: a bias list with a repeated id
// (packed next to each other in list order, as the backend packs them), the repetition penalty
// on positive, negative, zero and -inf logits, frequency and presence penalties of several
// counts, each stage on the previous one's result, over rows of several vocabularies.
TEST(CudaOpsLogitsEdit, EditsAsTheHostProcessorsDo) {
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
  for (int64_t vocab : {5, 1000, 128256}) {
    const int64_t rows = 6;
    Vec logits = cpu::RandomFloats(rows * vocab, static_cast<uint32_t>(vocab) + 3, -8.0f, 8.0f);
    std::vector<SamplingParams> params(rows);
    std::vector<TokenHistory> histories(rows);
    std::vector<cuda::LogitsEditRow> edits;
    std::vector<int32_t> ids;
    Vec values;
    for (int64_t r = 0; r < rows; ++r) {
      float* row = logits.data() + r * vocab;
      row[0] = 0.0f;
      row[vocab - 1] = -INFINITY;
      SamplingParams& p = params[r];
      TokenHistory& h = histories[r];
      p.repetition_penalty = r % 3 == 0 ? 1.0f : 0.6f + 0.25f * static_cast<float>(r);
      p.frequency_penalty = r % 2 == 0 ? 0.35f : 0.0f;
      p.presence_penalty = r == 5 ? 0.0f : -0.8f + 0.3f * static_cast<float>(r);
      for (int64_t i = 0; i < 12; ++i) {
        const int32_t id = static_cast<int32_t>((r * 977 + i * 7919) % vocab);
        h.Add(id, i % 4 != 0);  // prompt and output tokens, some repeated
        if (i % 3 == 0) h.Add(id, true);
      }
      h.Add(0, true);
      h.Add(static_cast<int32_t>(vocab - 1), false);
      const int32_t b = static_cast<int32_t>((r * 31) % vocab);
      p.logit_bias = {{b, 3.25f}, {b, -1.1f}, {b, 0.3f}, {static_cast<int32_t>(vocab - 1), 5.0f}};
      if (b > 0) p.logit_bias.insert(p.logit_bias.begin(), {0, -100.0f});
      cuda::LogitsEditRow e;
      e.row = static_cast<int32_t>(r);
      e.bias_begin = static_cast<int32_t>(ids.size());
      for (const auto& [id, bias] : p.logit_bias) {
        ids.push_back(id);
        values.push_back(bias);
      }
      e.bias_end = e.seen_begin = static_cast<int32_t>(ids.size());
      e.repetition_penalty = p.repetition_penalty;
      for (int32_t id : h.seen()) {
        ids.push_back(id);
        values.push_back(0.0f);
      }
      e.seen_end = e.counted_begin = static_cast<int32_t>(ids.size());
      e.frequency_penalty = p.frequency_penalty;
      e.presence_penalty = p.presence_penalty;
      for (const auto& [id, count] : h.output_counts()) {
        ids.push_back(id);
        values.push_back(static_cast<float>(count));
      }
      e.counted_end = static_cast<int32_t>(ids.size());
      edits.push_back(e);
    }
    DeviceValues dl(logits, Elem::kF32);
    DeviceArray<cuda::LogitsEditRow> de(edits);
    DeviceArray<int32_t> di(ids);
    DeviceArray<float> dv(values);
    ASSERT_TRUE(cuda::LaunchLogitsEdit({dl.as<float>(), de.get(), di.get(), dv.get(), rows, vocab},
                                       nullptr)
                    .ok());
    const Vec got = dl.ToHost();
    for (int64_t r = 0; r < rows; ++r) {
      Vec want(logits.begin() + r * vocab, logits.begin() + (r + 1) * vocab);
      ApplyLogitsProcessors(absl::MakeSpan(want), params[r], histories[r]);
      for (int64_t i = 0; i < vocab; ++i) {
        ASSERT_EQ(std::memcmp(&got[r * vocab + i], &want[i], 4), 0)
            << "vocab " << vocab << " row " << r << " id " << i << ": device " << got[r * vocab + i]
            << ", host " << want[i];
      }
    }
  }
}

// Device sampling against the host sampler on the same rows and Philox numbers, over
// temperature, top-k, top-p, min-p and their compositions, distinct and tied logits, masked
// (-inf) tokens and vocabularies up to Llama 3's: the same ids, except that the device's sums
// are fixed-point integers, not the host's doubles, so a draw within rounding of a boundary
// may take the neighbouring token (at most 1 in 500 draws: none at this test's 460). Rows that
// are not distributions are flagged.
TEST(CudaOpsSample, DrawsWhatTheHostSamplerDraws) {
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
  struct Config {
    float temperature;
    int32_t top_k;  // -1: vocab + 5
    float top_p, min_p;
  };
  const Config configs[] = {{1.0f, 0, 1.0f, 0.0f},    {0.7f, 0, 1.0f, 0.05f}, {0.8f, 40, 1.0f, 0.0f},
                            {1.0f, 0, 0.9f, 0.0f},    {0.6f, 50, 0.95f, 0.05f},
                            {1.5f, 0, 0.5f, 0.0f},    {1.0f, -1, 0.8f, 0.0f},
                            {0.3f, 2, 1.0f, 0.0f},    {1.2f, 0, 0.99f, 0.5f}};
  const int num_configs = static_cast<int>(sizeof(configs) / sizeof(configs[0]));
  int64_t draws = 0, differ = 0;
  for (int64_t vocab : {7, 1000, 32000, 128256}) {
    for (bool ties : {false, true}) {
      const int64_t rows = vocab > 32000 ? 18 : 72;
      Vec logits = cpu::RandomFloats(rows * vocab, static_cast<uint32_t>(vocab) + ties, -6.0f, 6.0f);
      if (ties) {
        for (float& l : logits) l = std::round(l * 4.0f) / 4.0f;  // many equal logits, and -0/+0
      }
      for (int64_t r = 0; r < rows; r += 3) logits[r * vocab + (r * 37) % vocab] = -INFINITY;
      logits[(rows - 1) * vocab] = std::nanf("");  // the last row is not a distribution
      std::vector<SamplingParams> params(rows);
      std::vector<cuda::SampleRowParams> device_rows(rows);
      for (int64_t r = 0; r < rows; ++r) {
        const Config& c = configs[r % num_configs];
        SamplingParams& p = params[r];
        p.temperature = c.temperature;
        p.top_k = c.top_k < 0 ? static_cast<int32_t>(vocab + 5) : c.top_k;
        p.top_p = c.top_p;
        p.min_p = c.min_p;
        p.seed = 1000 + static_cast<uint64_t>(r);
        p.stream = static_cast<uint32_t>(r % 3);
        const uint32_t position = static_cast<uint32_t>(r * 13);
        device_rows[r] = {static_cast<int32_t>(r), 1.0f / p.temperature, p.top_k, p.top_p,
                          p.min_p, PhiloxUniform(p.seed, p.stream, position)};
      }
      DeviceArray<float> dl(logits);
      DeviceArray<cuda::SampleRowParams> dr(device_rows);
      int32_t* tokens = nullptr;
      ASSERT_EQ(cudaMalloc(&tokens, rows * 4), cudaSuccess);
      ASSERT_TRUE(cuda::LaunchSample({dl.get(), dr.get(), tokens, rows, vocab, -7}, nullptr).ok());
      std::vector<int32_t> got(rows);
      ASSERT_EQ(cudaMemcpy(got.data(), tokens, rows * 4, cudaMemcpyDeviceToHost), cudaSuccess);
      cudaFree(tokens);
      EXPECT_EQ(got[rows - 1], -7) << "vocab " << vocab;
      std::vector<float> scratch;
      for (int64_t r = 0; r + 1 < rows; ++r) {
        const absl::Span<const float> row(logits.data() + r * vocab, vocab);
        const int32_t want = SampleToken(row, params[r], static_cast<uint32_t>(r * 13), scratch);
        ++draws;
        if (got[r] != want) {
          ++differ;
          std::printf("%s", (::testing::Message()
              << "differs: vocab " << vocab << (ties ? " (ties)" : "") << " row " << r << ": device "
              << got[r] << ", host " << want << " (logits " << (got[r] >= 0 ? row[got[r]] : 0.0f)
              << " and " << row[want] << ")\n").GetString().c_str());
        }
      }
    }
  }
  std::printf("device sampling: %lld of %lld draws differ from the host sampler\n",
              static_cast<long long>(differ), static_cast<long long>(draws));
  EXPECT_LE(differ * 500, draws) << "more than rounding at boundaries: see the rows printed";
}

// Device logprobs against the host's ComputeLogprobs on the same raw rows: the same top ids in
// the same order (ties to the lower id, -0 equal to +0, masked tokens last), and log-probabilities
// within a few ulp (the device sums exp(l - max) in double in another order than the host).
TEST(CudaOpsLogprobs, MatchTheHostLogprobs) {
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
  for (int64_t vocab : {7, 1000, 128256}) {
    for (bool ties : {false, true}) {
      const int64_t rows = 12;
      Vec logits = cpu::RandomFloats(rows * vocab, static_cast<uint32_t>(vocab) * 3 + ties, -9.0f, 9.0f);
      if (ties) {
        for (float& l : logits) l = std::round(l * 2.0f) / 2.0f;
      }
      for (int64_t r = 0; r < rows; r += 2) logits[r * vocab + (r * 5) % vocab] = -INFINITY;
      std::vector<cuda::LogprobRowParams> params(rows);
      std::vector<int32_t> tokens(rows);
      for (int64_t r = 0; r < rows; ++r) {
        tokens[r] = static_cast<int32_t>((r * 7919 + 3) % vocab);
        params[r] = {static_cast<int32_t>(rows - 1 - r), static_cast<int32_t>(r),
                     static_cast<int32_t>(r * 2 % (cuda::kMaxTopLogprobs + 1))};
      }
      params[0].top_n = cuda::kMaxTopLogprobs;
      DeviceArray<float> dl(logits);
      DeviceArray<cuda::LogprobRowParams> dp(params);
      DeviceArray<int32_t> dt(tokens);
      cuda::LogprobsOut* out = nullptr;
      ASSERT_EQ(cudaMalloc(&out, rows * sizeof(cuda::LogprobsOut)), cudaSuccess);
      ASSERT_TRUE(cuda::LaunchLogprobs({dl.get(), dp.get(), dt.get(), out, rows, vocab}, nullptr).ok());
      std::vector<cuda::LogprobsOut> got(rows);
      ASSERT_EQ(cudaMemcpy(got.data(), out, rows * sizeof(cuda::LogprobsOut), cudaMemcpyDeviceToHost),
                cudaSuccess);
      cudaFree(out);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = params[r].row;
        const absl::Span<const float> x(logits.data() + row * vocab, vocab);
        const TokenLogprobs want = ComputeLogprobs(x, tokens[r], params[r].top_n);
        const std::string where =
            "vocab " + std::to_string(vocab) + (ties ? " (ties)" : "") + " row " + std::to_string(row);
        auto near = [](float got_value, float want_value) {  // -inf (a masked token) exactly
          return std::isfinite(want_value) ? std::fabs(got_value - want_value) <=
                                                 4e-6f * std::max(1.0f, std::fabs(want_value))
                                           : got_value == want_value;
        };
        EXPECT_TRUE(near(got[r].logprob, want.logprob))
            << where << ": " << got[r].logprob << " vs " << want.logprob;
        ASSERT_EQ(static_cast<int64_t>(want.top_ids.size()),
                  std::min<int64_t>(params[r].top_n, vocab)) << where;
        for (size_t k = 0; k < want.top_ids.size(); ++k) {
          EXPECT_EQ(got[r].top_ids[k], want.top_ids[k]) << where << " rank " << k;
          EXPECT_TRUE(near(got[r].top_logprobs[k], want.top_logprobs[k]))
              << where << " rank " << k << ": " << got[r].top_logprobs[k] << " vs "
              << want.top_logprobs[k];
        }
      }
    }
  }
}

TEST(CudaOpsValidationTest, RejectsBadParams) {
  EXPECT_FALSE(cuda::LaunchNorm({}, nullptr).ok());
  EXPECT_FALSE(cuda::LaunchRope({}, nullptr).ok());
  EXPECT_FALSE(cuda::LaunchGatedAct({}, nullptr).ok());
  EXPECT_FALSE(cuda::LaunchUpdate({}, nullptr).ok());
  EXPECT_FALSE(cuda::LaunchEmbedding({}, nullptr).ok());
  EXPECT_FALSE(cuda::LaunchWriteKv({}, nullptr).ok());
  EXPECT_FALSE(cuda::LaunchGreedy({}, nullptr).ok());
  EXPECT_FALSE(cuda::LaunchSample({}, nullptr).ok());
  EXPECT_FALSE(cuda::LaunchLogitsEdit({}, nullptr).ok());
  EXPECT_FALSE(cuda::LaunchLogprobs({}, nullptr).ok());
  EXPECT_FALSE(cuda::LaunchMoeRoute({}, nullptr).ok());
  EXPECT_FALSE(cuda::LaunchMoePlan({}, nullptr).ok());
  EXPECT_FALSE(cuda::LaunchMoeMatMul({}, nullptr).ok());
  EXPECT_FALSE(cuda::LaunchMoeCombine({}, nullptr).ok());
  // Routings that cannot give top_k experts: refused before any device call.
  alignas(16) static float storage[64];
  cuda::MoeRouteParams route;
  route.logits = route.weights = storage;
  route.ids = reinterpret_cast<int32_t*>(storage);
  route.num_tokens = 1;
  route.num_experts = 8;
  route.top_k = 9;
  EXPECT_FALSE(cuda::LaunchMoeRoute(route, nullptr).ok()) << "top_k past the experts";
  route.top_k = 2;
  route.num_groups = 3;
  EXPECT_FALSE(cuda::LaunchMoeRoute(route, nullptr).ok()) << "groups that do not divide";
  route.num_groups = 4;
  route.topk_groups = 0;
  EXPECT_FALSE(cuda::LaunchMoeRoute(route, nullptr).ok()) << "no group kept";
  route.top_k = 6;
  route.topk_groups = 2;
  EXPECT_FALSE(cuda::LaunchMoeRoute(route, nullptr).ok()) << "4 experts kept for a top 6";
  route.num_experts = 64;
  route.num_groups = 1;
  route.topk_groups = 1;
  route.top_k = 33;
  EXPECT_FALSE(cuda::LaunchMoeRoute(route, nullptr).ok()) << "top_k past 32";
  cuda::MoeMatMulParams mm;
  mm.a = mm.out = storage;
  mm.offsets = mm.tiles = mm.chunk_tiles = reinterpret_cast<const int32_t*>(storage);
  mm.num_slots = 4;
  mm.w[0] = storage;
  mm.num_experts = 1;
  mm.n = 16;
  mm.k = 12;
  EXPECT_FALSE(cuda::LaunchMoeMatMul(mm, nullptr).ok()) << "k not a multiple of 8";
  mm.k = 16;
  mm.w[0] = storage + 1;
  EXPECT_FALSE(cuda::LaunchMoeMatMul(mm, nullptr).ok()) << "a weight not 16-byte aligned";
  mm.w[0] = storage;
  mm.gated = true;
  EXPECT_FALSE(cuda::LaunchMoeMatMul(mm, nullptr).ok()) << "gated without up";
  mm.gated = false;
  mm.num_experts = cuda::kMaxMoeLaunchExperts + 1;
  EXPECT_FALSE(cuda::LaunchMoeMatMul(mm, nullptr).ok()) << "more experts than a launch takes";
  mm.num_experts = 1;
  mm.first = 3;
  EXPECT_FALSE(cuda::LaunchMoeMatMul(mm, nullptr).ok()) << "a launch from inside a chunk";
  cuda::MoePlanParams plan;
  plan.ids = plan.offsets = plan.rows = plan.positions = plan.tiles = plan.chunk_tiles =
      reinterpret_cast<int32_t*>(storage);
  plan.num_slots = 5;
  plan.top_k = 2;
  plan.num_local = 4;
  EXPECT_FALSE(cuda::LaunchMoePlan(plan, nullptr).ok()) << "slots not tokens x top_k";
  cuda::UpdateParams softcap;
  softcap.op = cuda::UpdateParams::Op::kSoftcap;
  softcap.x = &softcap;
  softcap.n = 1;
  EXPECT_FALSE(cuda::LaunchUpdate(softcap, nullptr).ok()) << "a cap of 0";
}

}  // namespace
}  // namespace strata::kernels

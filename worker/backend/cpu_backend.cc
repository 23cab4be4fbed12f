// The CPU backend: kernels/cpu over host memory, parallelised with one ThreadPool. Ops run
// synchronously in call order (the "stream" is the calling thread); an op that cannot run
// records the first error, which the next Sync() returns. Activations and the KV cache are f32.
#include "worker/backend/cpu_backend.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "common/step.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/thread_pool.h"
#include "kernels/cpu/ops.h"
#include "worker/backend/cpu_moe.h"
#include "worker/backend/host_sampling.h"

namespace strata {
namespace {

namespace k = kernels::cpu;

// Elementwise work below this many values runs on the calling thread.
constexpr int64_t kParallelElements = int64_t{1} << 15;

// 64-byte aligned, zeroed host memory.
std::shared_ptr<void> AllocateHost(int64_t bytes) {
  const size_t size = static_cast<size_t>((std::max<int64_t>(bytes, 1) + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, size);
  if (p == nullptr) return nullptr;
  std::memset(p, 0, size);
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

// Bytes of memory the kernel says are available (MemAvailable), or 0.
int64_t HostMemoryAvailable() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(int num_threads) : pool_(num_threads) {
    info_ = CpuDeviceInfo();
    info_.name = absl::StrCat("x86-64 ", k::ActiveIsa(), ", ", pool_.num_threads(), " threads");
  }

  const DeviceInfo& device() const override { return info_; }

  absl::StatusOr<Weight> LoadWeight(const TensorView& host, DType dtype) override;
  absl::StatusOr<Weight> UploadWeight(DType dtype, Shape shape, const void* host) override;
  absl::StatusOr<Buffer> Allocate(DType dtype, Shape shape) override;
  // Step memory is host vectors sized by each step (the allocator keeps them).
  absl::Status Reserve(const StepLimits&) override { return absl::OkStatus(); }

  void CopyFromHost(const void* host, const Tensor& dst) override {
    std::memcpy(dst.data, host, dst.Bytes());
  }
  void CopyToHost(const Tensor& src, void* host) override {
    std::memcpy(host, src.data, src.Bytes());
  }
  absl::Status Sync() override {
    absl::Status error = std::move(error_);
    error_ = absl::OkStatus();
    return error;
  }

  absl::StatusOr<const StepPlan*> PlanStep(const StepBatch& batch) override;

  void MatMul(const Tensor& x, const Weight& w, const Weight* bias, const Tensor& y) override;
  void MatMulGroup(const Tensor& x, absl::Span<const Weight* const> ws,
                   absl::Span<const Weight* const> biases, absl::Span<const Tensor> ys) override;
  void Embedding(const StepPlan& plan, const Weight& table, int64_t vocab_begin, float scale,
                 const Tensor& out) override;
  void Norm(const Tensor& x, const NormParams& params, const Tensor& y) override;
  void AddNorm(const Tensor& residual, const Tensor& delta, const NormParams& params,
               const Tensor& y) override {
    Add(residual, delta);
    Norm(residual, params, y);
  }
  void Rope(const StepPlan& plan, const Tensor& x, const RopeParams& params) override;
  void GatedActivation(const Tensor& gate, const Tensor& up, Activation act,
                       const Tensor& out) override;
  void Activate(const Tensor& x, Activation act) override;
  void Add(const Tensor& x, const Tensor& y) override {
    if (!Check(SameShapeF32(x, y), "Add")) return;
    float* a = x.As<float>();
    const float* b = y.As<float>();
    Elementwise(x.NumElements(), [&](int64_t i0, int64_t i1) { k::AddInPlace(a + i0, b + i0, i1 - i0); });
  }
  void Convert(const Tensor& src, const Tensor& dst) override {
    const bool plain = !GetDTypeInfo(src.dtype).quantized && !GetDTypeInfo(dst.dtype).quantized &&
                       src.dtype != DType::kI32 && dst.dtype != DType::kI32 &&
                       src.dtype != DType::kI8 && dst.dtype != DType::kI8;
    if (!Check(plain && src.NumElements() == dst.NumElements(), "Convert: float tensors of one size")) {
      return;
    }
    const int64_t n = src.NumElements();
    if (src.dtype == dst.dtype) {
      std::memmove(dst.data, src.data, src.Bytes());
    } else if (src.dtype == DType::kF32) {
      QuantizeRow(dst.dtype, src.As<float>(), dst.data, n);
    } else if (dst.dtype == DType::kF32) {
      DequantizeRow(src.dtype, src.data, dst.As<float>(), n);
    } else {
      std::vector<float> wide(n);
      DequantizeRow(src.dtype, src.data, wide.data(), n);
      QuantizeRow(dst.dtype, wide.data(), dst.data, n);
    }
  }
  void Softcap(const Tensor& x, float cap) override {
    if (!Check(x.dtype == DType::kF32 && cap > 0.0f, "Softcap: f32 and cap > 0")) return;
    float* a = x.As<float>();
    Elementwise(x.NumElements(), [&](int64_t i0, int64_t i1) { k::Softcap(a + i0, i1 - i0, cap); });
  }
  void CopyColumns(const Tensor& src, int64_t src_col, const Tensor& dst, int64_t dst_col,
                   int64_t width) override {
    const int64_t rows = src.Rows();
    if (!Check(src.dtype == dst.dtype && dst.Rows() == rows && src_col >= 0 && dst_col >= 0 &&
                   src_col + width <= src.Cols() && dst_col + width <= dst.Cols(),
               "CopyColumns: shapes")) {
      return;
    }
    const int64_t elem = ElementsToBytes(src.dtype, 1);
    for (int64_t r = 0; r < rows; ++r) {
      std::memmove(dst.data + (r * dst.Cols() + dst_col) * elem,
                   src.data + (r * src.Cols() + src_col) * elem, width * elem);
    }
  }
  void GatherLogitRows(const StepPlan& plan, const Tensor& src, const Tensor& dst) override;
  void WriteKv(const StepPlan& plan, const Tensor& key, const Tensor& value,
               const KvLayer& cache) override {
    if (!Check(IsF32Cache(cache), "WriteKv: the CPU cache is f32")) return;
    k::WriteKv(ToPagedKv(cache), key.As<float>(), value.As<float>(), plan.slot_mapping,
               plan.num_tokens);
  }
  void Attention(const StepPlan& plan, const Tensor& q, const KvLayer& cache,
                 const AttentionParams& params, const Tensor& out) override;
  void MoeRoute(const Tensor& logits, const MoeRouting& routing, const Tensor& ids,
                const Tensor& weights) override {
    if (!Check(logits.dtype == DType::kF32 && ids.dtype == DType::kI32, "MoeRoute: dtypes")) {
      return;
    }
    RouteExperts(logits, routing, ids, weights);
  }
  void MoeFfn(const Tensor& x, const Tensor& ids, const Tensor& weights,
              const ExpertWeights& experts, const Tensor& y) override;

  absl::Status Sample(const Tensor& logits, absl::Span<const SamplingRow> rows,
                      std::vector<SampledToken>& out) override;

 private:
  // Records `what` as the step's error unless `ok` (keeps the first error).
  bool Check(bool ok, std::string_view what) {
    if (!ok && error_.ok()) {
      error_ = absl::InvalidArgumentError(absl::StrCat("cpu backend: ", Sv(what)));
    }
    return ok && error_.ok();
  }
  static bool SameShapeF32(const Tensor& a, const Tensor& b) {
    return a.dtype == DType::kF32 && b.dtype == DType::kF32 && a.NumElements() == b.NumElements();
  }
  static bool IsF32Cache(const KvLayer& c) {
    return c.k.dtype == DType::kF32 && (c.v.empty() || c.v.dtype == DType::kF32);
  }
  static k::PagedKv ToPagedKv(const KvLayer& c) {
    k::PagedKv kv;
    kv.k = c.k.As<float>();
    kv.v = c.v.empty() ? kv.k : c.v.As<float>();
    kv.num_blocks = c.num_blocks;
    kv.block_size = c.block_size;
    kv.num_kv_heads = c.num_kv_heads;
    kv.head_dim = c.head_dim;
    kv.v_head_dim = c.v_head_dim;
    return kv;
  }
  // Runs fn(begin, end) over [0, n), on the pool when n is large.
  template <class Fn>
  void Elementwise(int64_t n, Fn&& fn) {
    if (n < kParallelElements || pool_.num_threads() == 1) {
      fn(0, n);
      return;
    }
    pool_.ParallelFor(n, kParallelElements / 4, fn);
  }
  // Runs fn(row_begin, row_end) over `rows` rows of `cols` values each.
  template <class Fn>
  void Rowwise(int64_t rows, int64_t cols, Fn&& fn) {
    if (rows * cols < kParallelElements || rows == 1 || pool_.num_threads() == 1) {
      fn(0, rows);
      return;
    }
    pool_.ParallelFor(rows, std::max<int64_t>(1, kParallelElements / 4 / cols), fn);
  }

  ThreadPool pool_;
  DeviceInfo info_;
  absl::Status error_;
  // The current step's metadata (host memory is the backend's memory).
  StepBatch batch_;
  std::vector<int32_t> token_seq_;
  StepPlan plan_;
};

absl::StatusOr<Weight> CpuBackend::LoadWeight(const TensorView& host, DType dtype) {
  if (host.dtype == dtype) return Weight{host, nullptr};
  const int64_t rows = host.Rows(), cols = host.Cols();
  if (!IsBlockAligned(dtype, cols)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot convert a row of ", cols, " values to ", DTypeName(dtype), " (blocks of ",
        GetDTypeInfo(dtype).block_elems, ")"));
  }
  const int64_t row_bytes = ElementsToBytes(dtype, cols);
  std::shared_ptr<void> storage = AllocateHost(rows * row_bytes);
  if (storage == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", rows * row_bytes, " bytes of host memory"));
  }
  auto* out = static_cast<std::byte*>(storage.get());
  pool_.ParallelFor(rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> row(cols);
    for (int64_t r = begin; r < end; ++r) {
      DequantizeRow(host.dtype, host.Row(r), row.data(), cols);
      QuantizeRow(dtype, row.data(), out + r * row_bytes, cols);
    }
  });
  return Weight{MakeView(dtype, host.shape, out), std::move(storage)};
}

absl::StatusOr<Weight> CpuBackend::UploadWeight(DType dtype, Shape shape, const void* host) {
  const int64_t bytes = ElementsToBytes(dtype, NumElements(shape));
  std::shared_ptr<void> storage = AllocateHost(bytes);
  if (storage == nullptr) return absl::ResourceExhaustedError("cannot allocate host memory");
  std::memcpy(storage.get(), host, bytes);
  return Weight{MakeView(dtype, std::move(shape), storage.get()), std::move(storage)};
}

absl::StatusOr<Buffer> CpuBackend::Allocate(DType dtype, Shape shape) {
  const int64_t bytes = ElementsToBytes(dtype, NumElements(shape));
  std::shared_ptr<void> storage = AllocateHost(bytes);
  if (storage == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", bytes, " bytes of host memory"));
  }
  Tensor t = MakeTensor(dtype, std::move(shape), storage.get());
  return Buffer{std::move(t), std::move(storage)};
}

absl::StatusOr<const StepPlan*> CpuBackend::PlanStep(const StepBatch& batch) {
  batch_ = batch;
  StepPlan& p = plan_;
  p = PlanShape(batch_, token_seq_);
  p.tokens = batch_.tokens.data();
  p.positions = batch_.positions.data();
  p.slot_mapping = batch_.slot_mapping.data();
  p.token_seq = token_seq_.data();
  p.query_start = batch_.query_start.data();
  p.context_lens = batch_.context_lens.data();
  p.block_tables = batch_.block_tables.data();
  p.logit_rows = batch_.logit_rows.data();
  return &plan_;
}

void CpuBackend::MatMul(const Tensor& x, const Weight& w, const Weight* bias, const Tensor& y) {
  const Weight* ws[] = {&w};
  const Weight* bs[] = {bias};
  const Tensor ys[] = {y};
  MatMulGroup(x, ws, bs, ys);
}

void CpuBackend::MatMulGroup(const Tensor& x, absl::Span<const Weight* const> ws,
                             absl::Span<const Weight* const> biases,
                             absl::Span<const Tensor> ys) {
  const int64_t m = x.Rows(), kdim = x.Cols();
  bool ok = x.dtype == DType::kF32 && ws.size() == ys.size() && !ws.empty();
  for (size_t i = 0; ok && i < ws.size(); ++i) {
    ok = ws[i]->view.Cols() == kdim && ys[i].dtype == DType::kF32 &&
         ys[i].NumElements() == m * ws[i]->view.Rows();
  }
  if (!Check(ok, "MatMul: shapes do not fit")) return;
  absl::InlinedVector<const TensorView*, 4> views;
  absl::InlinedVector<float*, 4> outs;
  for (size_t i = 0; i < ws.size(); ++i) {
    views.push_back(&ws[i]->view);
    outs.push_back(ys[i].As<float>());
  }
  // One fused loop when the weights share a dtype, else one matmul each.
  bool same = true;
  for (const TensorView* v : views) same = same && v->dtype == views[0]->dtype;
  if (same) {
    k::MatMulGroup(x.As<float>(), m, views, outs, pool_);
  } else {
    for (size_t i = 0; i < views.size(); ++i) k::MatMul(x.As<float>(), m, *views[i], outs[i], pool_);
  }
  for (size_t i = 0; i < biases.size() && i < ws.size(); ++i) {
    if (biases[i] == nullptr) continue;
    const float* b = reinterpret_cast<const float*>(biases[i]->view.data);
    const int64_t n = ws[i]->view.Rows();
    Rowwise(m, n, [&](int64_t r0, int64_t r1) { k::AddBias(outs[i] + r0 * n, b, r1 - r0, n); });
  }
}

void CpuBackend::Embedding(const StepPlan& plan, const Weight& table, int64_t vocab_begin,
                           float scale, const Tensor& out) {
  const int64_t dim = table.view.Cols(), rows = table.view.Rows();
  if (!Check(out.dtype == DType::kF32 && out.NumElements() == plan.num_tokens * dim,
             "Embedding: output shape")) {
    return;
  }
  float* o = out.As<float>();
  for (int64_t i = 0; i < plan.num_tokens; ++i) {
    const int64_t id = plan.tokens[i] - vocab_begin;
    float* row = o + i * dim;
    if (id < 0 || id >= rows) {
      std::fill_n(row, dim, 0.0f);
      continue;
    }
    DequantizeRow(table.view.dtype, table.view.Row(id), row, dim);
    if (scale != 1.0f) {
      for (int64_t j = 0; j < dim; ++j) row[j] *= scale;
    }
  }
}

void CpuBackend::Norm(const Tensor& x, const NormParams& params, const Tensor& y) {
  const int64_t dim = x.Cols(), rows = x.Rows();
  if (!Check(SameShapeF32(x, y) && params.weight != nullptr &&
                 params.weight->view.NumElements() == dim,
             "Norm: shapes")) {
    return;
  }
  const float* w = reinterpret_cast<const float*>(params.weight->view.data);
  const float* b =
      params.bias != nullptr ? reinterpret_cast<const float*>(params.bias->view.data) : nullptr;
  const float* in = x.As<float>();
  float* out = y.As<float>();
  Rowwise(rows, dim, [&](int64_t r0, int64_t r1) {
    if (params.kind == NormKind::kRms) {
      k::RmsNorm(in + r0 * dim, w, r1 - r0, dim, params.eps, out + r0 * dim);
    } else {
      k::LayerNorm(in + r0 * dim, w, b, r1 - r0, dim, params.eps, out + r0 * dim);
    }
  });
}

void CpuBackend::Rope(const StepPlan& plan, const Tensor& x, const RopeParams& params) {
  const int64_t heads = x.shape.size() == 3 ? x.shape[1] : 0;
  const int64_t head_dim = x.Cols();
  if (!Check(x.dtype == DType::kF32 && heads > 0 && x.shape[0] == plan.num_tokens &&
                 params.rotary_dim <= head_dim && params.rotary_dim % 2 == 0,
             "Rope: x must be [num_tokens, heads, head_dim] f32")) {
    return;
  }
  auto table = [&](int64_t seq, const float** inv, float* mscale) {
    const bool use_long = params.long_inv_freq != nullptr && params.long_threshold > 0 &&
                          plan.context_lens[seq] > params.long_threshold;
    const Weight* w = use_long ? params.long_inv_freq : params.inv_freq;
    *inv = reinterpret_cast<const float*>(w->view.data);
    *mscale = use_long ? params.long_mscale : params.mscale;
  };
  // One call per sequence (they may use different tables), tokens split across the pool.
  float* data = x.As<float>();
  Rowwise(plan.num_seqs, plan.max_query_len * heads * head_dim, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t t0 = plan.query_start[s], t1 = plan.query_start[s + 1];
      const float* inv;
      float mscale;
      table(s, &inv, &mscale);
      k::ApplyRope(data + t0 * heads * head_dim, t1 - t0, heads, head_dim, plan.positions + t0,
                   inv, params.rotary_dim, params.layout, mscale);
    }
  });
}

void CpuBackend::GatedActivation(const Tensor& gate, const Tensor& up, Activation act,
                                 const Tensor& out) {
  if (!Check(SameShapeF32(gate, up) && SameShapeF32(gate, out), "GatedActivation: shapes")) return;
  const float* g = gate.As<float>();
  const float* u = up.As<float>();
  float* o = out.As<float>();
  Elementwise(gate.NumElements(), [&](int64_t i0, int64_t i1) {
    if (act == Activation::kSilu) {
      k::SiluMul(g + i0, u + i0, i1 - i0, o + i0);
    } else {
      k::GeluMul(g + i0, u + i0, i1 - i0, act == Activation::kGeluTanh, o + i0);
    }
  });
}

void CpuBackend::Activate(const Tensor& x, Activation act) {
  if (!Check(x.dtype == DType::kF32, "Activate: f32")) return;
  float* a = x.As<float>();
  Elementwise(x.NumElements(), [&](int64_t i0, int64_t i1) {
    if (act == Activation::kSilu) {
      k::SiluInPlace(a + i0, i1 - i0);
    } else {
      k::GeluInPlace(a + i0, i1 - i0, act == Activation::kGeluTanh);
    }
  });
}

void CpuBackend::GatherLogitRows(const StepPlan& plan, const Tensor& src, const Tensor& dst) {
  const int64_t dim = src.Cols();
  if (!Check(src.dtype == dst.dtype && dst.NumElements() == plan.num_logit_rows * dim,
             "GatherLogitRows: shapes")) {
    return;
  }
  const int64_t row_bytes = ElementsToBytes(src.dtype, dim);
  for (int64_t i = 0; i < plan.num_logit_rows; ++i) {
    std::memmove(dst.data + i * row_bytes, src.data + int64_t{plan.logit_rows[i]} * row_bytes,
                 row_bytes);
  }
}

void CpuBackend::Attention(const StepPlan& plan, const Tensor& q, const KvLayer& cache,
                           const AttentionParams& params, const Tensor& out) {
  const int64_t dv = params.v_head_dim > 0 ? params.v_head_dim : params.head_dim;
  if (!Check(IsF32Cache(cache) && q.dtype == DType::kF32 &&
                 q.NumElements() == plan.num_tokens * params.num_heads * params.head_dim &&
                 out.NumElements() == plan.num_tokens * params.num_heads * dv &&
                 cache.head_dim == params.head_dim && cache.num_kv_heads == params.num_kv_heads &&
                 (cache.v_head_dim > 0 ? cache.v_head_dim : cache.head_dim) == dv,
             "Attention: shapes")) {
    return;
  }
  k::AttentionParams p;
  p.num_heads = params.num_heads;
  p.num_kv_heads = params.num_kv_heads;
  p.head_dim = params.head_dim;
  p.scale = params.scale;
  p.softcap = params.softcap;
  p.sliding_window = params.sliding_window;
  k::PagedAttention(q.As<float>(), ToPagedKv(cache), plan.block_tables, plan.max_blocks_per_seq,
                    plan.query_start, plan.context_lens, plan.num_seqs, p, out.As<float>(), pool_);
}

void CpuBackend::MoeFfn(const Tensor& x, const Tensor& ids, const Tensor& weights,
                        const ExpertWeights& experts, const Tensor& y) {
  if (!Check(x.dtype == DType::kF32 && SameShapeF32(x, y) && ids.dtype == DType::kI32 &&
                 weights.dtype == DType::kF32 && ids.NumElements() == weights.NumElements(),
             "MoeFfn: shapes")) {
    return;
  }
  RunExperts(*this, x, ids, weights, experts, y);
}

absl::Status CpuBackend::Sample(const Tensor& logits, absl::Span<const SamplingRow> rows,
                                std::vector<SampledToken>& out) {
  STRATA_RETURN_IF_ERROR(Sync());
  if (logits.dtype != DType::kF32 || logits.Rows() != static_cast<int64_t>(rows.size())) {
    return absl::InvalidArgumentError("cpu backend: Sample: one f32 logits row per sample");
  }
  return SampleHostLogits(logits.As<float>(), logits.Cols(), rows, out, &pool_);
}

}  // namespace

DeviceInfo CpuDeviceInfo() {
  DeviceInfo info;
  info.kind = DeviceKind::kCpu;
  info.index = 0;
  info.count = 1;
  info.name = absl::StrCat("x86-64 ", k::ActiveIsa());
  const int64_t pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  info.memory_total = pages > 0 && page > 0 ? pages * page : 0;
  info.memory_free = HostMemoryAvailable();
  info.activation_dtype = DType::kF32;
  info.kv_dtype = DType::kF32;
  info.host_memory = true;
  return info;
}

std::unique_ptr<Backend> MakeCpuBackend(int num_threads) {
  return std::make_unique<CpuBackend>(num_threads);
}

}  // namespace strata

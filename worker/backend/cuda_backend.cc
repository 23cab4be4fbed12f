// The CUDA backend. Every op is queued on one stream and returns at once; argument errors and
// launch errors are recorded (the first one is kept) and returned by the next Sync(), which
// also waits for the stream and collects asynchronous CUDA errors.
#include "worker/backend/cuda_backend.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/philox.h"
#include "common/status.h"
#include "common/step.h"
#include "common/strings.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/ops.h"
#include "worker/backend/cuda_matmul.h"
#include "worker/backend/host_sampling.h"

namespace strata {
namespace {

namespace kc = kernels::cuda;

constexpr int64_t kMatMulWorkspace = int64_t{32} << 20;

// The error of a failed runtime call, which is also cleared from the thread's last error (else
// the next launch check would report it again).
absl::Status CudaError(cudaError_t err, std::string_view what) {
  cudaGetLastError();
  return absl::InternalError(absl::StrCat("cuda backend: ", Sv(what), ": ", cudaGetErrorString(err)));
}

// Device memory freed with its last owner.
absl::StatusOr<std::shared_ptr<void>> DeviceAlloc(int64_t bytes, int device) {
  void* p = nullptr;
  if (cudaError_t err = cudaMalloc(&p, static_cast<size_t>(std::max<int64_t>(bytes, 16)));
      err != cudaSuccess) {
    cudaGetLastError();  // reported here: not again by the next launch check
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", bytes, " bytes on cuda:", device, ": ", cudaGetErrorString(err)));
  }
  return std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
}

// Activation element types the kernels take; nullopt for others.
std::optional<kc::Elem> ElemOf(DType dtype) {
  if (dtype == DType::kF32) return kc::Elem::kF32;
  if (dtype == DType::kBF16) return kc::Elem::kBf16;
  return std::nullopt;
}

kc::Act ActOf(Activation act) {
  switch (act) {
    case Activation::kSilu:
      return kc::Act::kSilu;
    case Activation::kGeluTanh:
      return kc::Act::kGeluTanh;
    case Activation::kGeluErf:
      return kc::Act::kGeluErf;
  }
  return kc::Act::kSilu;
}

class CudaBackend : public Backend {
 public:
  CudaBackend(DeviceInfo info, cudaStream_t stream, std::unique_ptr<CudaMatMul> matmul)
      : info_(std::move(info)), stream_(stream), matmul_(std::move(matmul)) {}
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    matmul_.reset();
    cudaStreamDestroy(stream_);
    if (meta_host_ != nullptr) cudaFreeHost(meta_host_);
  }

  const DeviceInfo& device() const override { return info_; }

  absl::StatusOr<Weight> LoadWeight(const TensorView& host, DType dtype) override;
  absl::StatusOr<Weight> UploadWeight(DType dtype, Shape shape, const void* host) override {
    return LoadWeight(MakeView(dtype, std::move(shape), host), dtype);
  }
  absl::StatusOr<Buffer> Allocate(DType dtype, Shape shape) override;

  void CopyFromHost(const void* host, const Tensor& dst) override {
    Launched(cudaMemcpyAsync(dst.data, host, dst.Bytes(), cudaMemcpyHostToDevice, stream_),
             "copy to the device");
  }
  void CopyToHost(const Tensor& src, void* host) override {
    Launched(cudaMemcpyAsync(host, src.data, src.Bytes(), cudaMemcpyDeviceToHost, stream_),
             "copy to the host");
  }
  absl::Status Sync() override {
    Launched(cudaStreamSynchronize(stream_), "step");
    absl::Status error = std::move(error_);
    error_ = absl::OkStatus();
    return error;
  }

  absl::StatusOr<const StepPlan*> PlanStep(const StepBatch& batch) override;

  void MatMul(const Tensor& x, const Weight& w, const Weight* bias, const Tensor& y) override {
    const Weight* ws[] = {&w};
    const Weight* bs[] = {bias};
    const Tensor ys[] = {y};
    MatMulGroup(x, ws, bs, ys);
  }
  void MatMulGroup(const Tensor& x, absl::Span<const Weight* const> ws,
                   absl::Span<const Weight* const> biases, absl::Span<const Tensor> ys) override;
  void Embedding(const StepPlan& plan, const Weight& table, int64_t vocab_begin, float scale,
                 const Tensor& out) override {
    const auto elem = ElemOf(out.dtype);
    if (!Check(elem && table.view.dtype == DType::kBF16 &&
                   out.NumElements() == plan.num_tokens * table.view.Cols(),
               "Embedding: a bf16 table and an output of [num_tokens, dim]")) {
      return;
    }
    Record(kc::LaunchEmbedding({plan.tokens, table.view.data, out.data, plan.num_tokens,
                                table.view.Rows(), table.view.Cols(), vocab_begin, scale, *elem},
                               stream_));
  }
  void Norm(const Tensor& x, const NormParams& params, const Tensor& y) override {
    RunNorm(x, nullptr, params, y);
  }
  void AddNorm(const Tensor& residual, const Tensor& delta, const NormParams& params,
               const Tensor& y) override {
    RunNorm(residual, &delta, params, y);
  }
  void Rope(const StepPlan& plan, const Tensor& x, const RopeParams& params) override;
  void GatedActivation(const Tensor& gate, const Tensor& up, Activation act,
                       const Tensor& out) override {
    const auto elem = ElemOf(gate.dtype);
    if (!Check(elem && SameShape(gate, up) && SameShape(gate, out), "GatedActivation: shapes")) {
      return;
    }
    Record(kc::LaunchGatedAct({gate.data, up.data, out.data, gate.NumElements(), ActOf(act), *elem},
                              stream_));
  }
  void Activate(const Tensor& x, Activation act) override {
    kc::UpdateParams p;
    p.op = kc::UpdateParams::Op::kAct;
    p.act = ActOf(act);
    Update(x, p, "Activate");
  }
  void Add(const Tensor& x, const Tensor& y) override {
    if (!Check(SameShape(x, y), "Add: shapes")) return;
    kc::UpdateParams p;
    p.op = kc::UpdateParams::Op::kAdd;
    p.y = y.data;
    Update(x, p, "Add");
  }
  void Convert(const Tensor& src, const Tensor& dst) override {
    const auto from = ElemOf(src.dtype), to = ElemOf(dst.dtype);
    if (!Check(from && to && src.NumElements() == dst.NumElements(),
               "Convert: f32 or bf16 tensors of one size")) {
      return;
    }
    Record(kc::LaunchConvert({src.data, *from, dst.data, *to, src.NumElements()}, stream_));
  }
  void Softcap(const Tensor& x, float cap) override {
    kc::UpdateParams p;
    p.op = kc::UpdateParams::Op::kSoftcap;
    p.cap = cap;
    Update(x, p, "Softcap");
  }
  void CopyColumns(const Tensor& src, int64_t src_col, const Tensor& dst, int64_t dst_col,
                   int64_t width) override;
  void GatherLogitRows(const StepPlan& plan, const Tensor& src, const Tensor& dst) override {
    const int64_t row_bytes = ElementsToBytes(src.dtype, src.Cols());
    if (!Check(src.dtype == dst.dtype && dst.NumElements() == plan.num_logit_rows * src.Cols(),
               "GatherLogitRows: shapes")) {
      return;
    }
    Record(kc::LaunchGatherRows({src.data, dst.data, plan.logit_rows, plan.num_logit_rows, row_bytes},
                                stream_));
  }
  void WriteKv(const StepPlan& plan, const Tensor& k, const Tensor& v,
               const KvLayer& cache) override;
  void Attention(const StepPlan& plan, const Tensor& q, const KvLayer& cache,
                 const AttentionParams& params, const Tensor& out) override;
  void MoeRoute(const Tensor&, const MoeRouting&, const Tensor&, const Tensor&) override {
    Unsupported("MoeRoute: mixture-of-experts layers are not implemented on the GPU yet");
  }
  void MoeFfn(const Tensor&, const Tensor&, const Tensor&, const ExpertWeights&,
              const Tensor&) override {
    Unsupported("MoeFfn: mixture-of-experts layers are not implemented on the GPU yet");
  }

  absl::Status Sample(const Tensor& logits, absl::Span<const SamplingRow> rows,
                      std::vector<SampledToken>& out) override;

 private:
  // Records `what` as the step's error unless `ok` (keeps the first error).
  bool Check(bool ok, std::string_view what) {
    if (!ok && error_.ok()) {
      error_ = absl::InvalidArgumentError(absl::StrCat("cuda backend: ", Sv(what)));
    }
    return ok && error_.ok();
  }
  // Records an op this backend does not have as the step's error.
  void Unsupported(std::string_view what) {
    if (error_.ok()) error_ = absl::UnimplementedError(absl::StrCat("cuda backend: ", Sv(what)));
  }
  void Record(const absl::Status& status) {
    if (!status.ok() && error_.ok()) {
      error_ = absl::Status(status.code(), absl::StrCat("cuda backend: ", status.message()));
    }
  }
  void Launched(cudaError_t err, std::string_view what) {
    if (err == cudaSuccess) return;
    const absl::Status status = CudaError(err, what);
    if (error_.ok()) error_ = status;
  }
  // Host -> device on the stream, complete when it returns (the host bytes may go).
  absl::Status Upload(void* dst, const void* src, int64_t bytes) {
    cudaError_t err = cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyHostToDevice,
                                      stream_);
    if (err == cudaSuccess) err = cudaStreamSynchronize(stream_);
    if (err == cudaSuccess) return absl::OkStatus();
    return CudaError(err, "weight upload");
  }
  static bool SameShape(const Tensor& a, const Tensor& b) {
    return a.dtype == b.dtype && a.NumElements() == b.NumElements();
  }
  void Update(const Tensor& x, kc::UpdateParams p, std::string_view what) {
    const auto elem = ElemOf(x.dtype);
    if (!Check(elem.has_value(), absl::StrCat(Sv(what), ": f32 or bf16"))) return;
    p.x = x.data;
    p.n = x.NumElements();
    p.elem = *elem;
    Record(kc::LaunchUpdate(p, stream_));
  }
  void RunNorm(const Tensor& x, const Tensor* delta, const NormParams& params, const Tensor& y);
  // Device scratch of at least `bytes`, grown (never shrunk) on demand.
  void* Scratch(std::shared_ptr<void>& buffer, int64_t& size, int64_t bytes);

  DeviceInfo info_;
  cudaStream_t stream_;
  std::unique_ptr<CudaMatMul> matmul_;
  absl::Status error_;
  // The step plan: metadata packed in pinned host memory, copied to the device in one transfer.
  StepPlan plan_;
  int32_t* meta_host_ = nullptr;
  int64_t meta_host_size_ = 0;  // int32 values
  std::shared_ptr<void> meta_device_;
  int64_t meta_device_bytes_ = 0;
  std::shared_ptr<void> x_bf16_;  // f32 activations converted for a matmul
  int64_t x_bf16_bytes_ = 0;
  std::shared_ptr<void> attention_ws_;
  int64_t attention_ws_bytes_ = 0;
  std::vector<float> host_logits_;
  std::shared_ptr<void> sample_scratch_;  // greedy ids, then the rows sampled on the host
  int64_t sample_scratch_bytes_ = 0;
};

// Rows without logit bias, penalties or logprobs are sampled on the device (greedy, or
// temperature with top-k, top-p and min-p, drawing the host's Philox numbers) and only their ids
// come back; the others are gathered, copied to the host and sampled there by the one host
// sampler, so every row gets what the CPU backend would give it (the device sums fixed-point
// masses, not the host's doubles: a draw within rounding of a boundary may take the
// neighbouring token; see kernels/cuda/ops.h LaunchSample).
absl::Status CudaBackend::Sample(const Tensor& logits, absl::Span<const SamplingRow> rows,
                                 std::vector<SampledToken>& out) {
  const int64_t n = static_cast<int64_t>(rows.size()), vocab = logits.Cols();
  if (logits.dtype != DType::kF32 || logits.Rows() != n) {
    return absl::InvalidArgumentError("cuda backend: Sample: one f32 logits row per sample");
  }
  std::vector<int32_t> on_host;  // rows sampled on the host
  std::vector<kc::SampleRowParams> drawn;  // rows drawn on the device
  for (int64_t r = 0; r < n; ++r) {
    const SamplingParams& p = *rows[r].params;
    if (!p.logit_bias.empty() || p.HasPenalties() || p.logprobs >= 0) {
      on_host.push_back(static_cast<int32_t>(r));
    } else if (!p.IsGreedy()) {
      drawn.push_back({static_cast<int32_t>(r), 1.0f / p.temperature, p.top_k, p.top_p, p.min_p,
                       PhiloxUniform(p.seed, p.stream, rows[r].position)});
    }
  }
  const int64_t hosted = static_cast<int64_t>(on_host.size());
  const int64_t draws = static_cast<int64_t>(drawn.size());
  // Scratch, 16-byte aligned parts: [n] ids, [hosted] row indices, [draws] row parameters,
  // then [hosted, vocab] gathered logits.
  auto aligned = [](int64_t bytes) { return (bytes + 15) / 16 * 16; };
  const int64_t ids_bytes = aligned((n + hosted) * 4);
  const int64_t params_bytes = aligned(draws * static_cast<int64_t>(sizeof(kc::SampleRowParams)));
  auto* base = static_cast<std::byte*>(Scratch(sample_scratch_, sample_scratch_bytes_,
                                               ids_bytes + params_bytes + hosted * vocab * 4));
  if (base == nullptr) return Sync();
  auto* ids = reinterpret_cast<int32_t*>(base);
  auto* row_params = reinterpret_cast<kc::SampleRowParams*>(base + ids_bytes);
  auto* gathered = reinterpret_cast<float*>(base + ids_bytes + params_bytes);
  std::vector<int32_t> device_ids(n);
  if (hosted < n) {
    Record(kc::LaunchGreedy({logits.As<float>(), ids, n, vocab, kNonFiniteLogits}, stream_));
    if (draws > 0) {
      Launched(cudaMemcpyAsync(row_params, drawn.data(), draws * sizeof(kc::SampleRowParams),
                               cudaMemcpyHostToDevice, stream_),
               "sampling parameters");
      Record(kc::LaunchSample({logits.As<float>(), row_params, ids, draws, vocab, kNonFiniteLogits},
                              stream_));
    }
    Launched(cudaMemcpyAsync(device_ids.data(), ids, n * 4, cudaMemcpyDeviceToHost, stream_),
             "sampled ids");
  }
  if (hosted > 0) {
    Launched(cudaMemcpyAsync(ids + n, on_host.data(), hosted * 4, cudaMemcpyHostToDevice, stream_),
             "sampled rows");
    Record(kc::LaunchGatherRows({logits.data, gathered, ids + n, hosted, vocab * 4}, stream_));
    host_logits_.resize(hosted * vocab);
    Launched(cudaMemcpyAsync(host_logits_.data(), gathered, hosted * vocab * 4,
                             cudaMemcpyDeviceToHost, stream_),
             "sampled logits");
  }
  STRATA_RETURN_IF_ERROR(Sync());
  out.assign(n, SampledToken{});
  for (int64_t r = 0; r < n; ++r) out[r].token = device_ids[r];
  if (hosted == 0) return absl::OkStatus();
  std::vector<SamplingRow> host_rows(hosted);
  for (int64_t i = 0; i < hosted; ++i) host_rows[i] = rows[on_host[i]];
  std::vector<SampledToken> host_out;
  STRATA_RETURN_IF_ERROR(SampleHostLogits(host_logits_.data(), vocab, host_rows, host_out));
  for (int64_t i = 0; i < hosted; ++i) out[on_host[i]] = std::move(host_out[i]);
  return absl::OkStatus();
}

absl::StatusOr<Weight> CudaBackend::LoadWeight(const TensorView& host, DType dtype) {
  // Vectors in f32, matrices in bf16 (see the header); converted on the host, row by row.
  if (cudaError_t err = cudaSetDevice(info_.index); err != cudaSuccess) {
    return CudaError(err, "select the device");
  }
  const bool matrix = host.shape.size() >= 2;
  const DType stored = matrix ? DType::kBF16 : DType::kF32;
  const int64_t rows = host.Rows(), cols = host.Cols();
  if (host.dtype == stored && host.IsContiguous()) {  // as stored: one copy, no conversion
    const int64_t size = rows * host.RowBytes();
    STRATA_ASSIGN_OR_RETURN(std::shared_ptr<void> storage, DeviceAlloc(size, info_.index));
    STRATA_RETURN_IF_ERROR(Upload(storage.get(), host.data, size));
    return Weight{MakeView(stored, host.shape, storage.get()), std::move(storage)};
  }
  std::vector<std::byte> bytes(ElementsToBytes(stored, rows * cols));
  std::vector<float> row(cols);
  const int64_t row_bytes = ElementsToBytes(stored, cols);
  for (int64_t r = 0; r < rows; ++r) {
    DequantizeRow(host.dtype, host.Row(r), row.data(), cols);
    QuantizeRow(stored, row.data(), bytes.data() + r * row_bytes, cols);
  }
  STRATA_ASSIGN_OR_RETURN(std::shared_ptr<void> storage,
                          DeviceAlloc(static_cast<int64_t>(bytes.size()), info_.index));
  STRATA_RETURN_IF_ERROR(Upload(storage.get(), bytes.data(), static_cast<int64_t>(bytes.size())));
  return Weight{MakeView(stored, host.shape, storage.get()), std::move(storage)};
}

absl::StatusOr<Buffer> CudaBackend::Allocate(DType dtype, Shape shape) {
  if (cudaError_t err = cudaSetDevice(info_.index); err != cudaSuccess) {
    return CudaError(err, "select the device");
  }
  const int64_t bytes = ElementsToBytes(dtype, NumElements(shape));
  STRATA_ASSIGN_OR_RETURN(std::shared_ptr<void> storage, DeviceAlloc(bytes, info_.index));
  // On the stream: ordered before every later op on it (a non-blocking stream would not wait
  // for a legacy-stream memset).
  if (cudaError_t err = cudaMemsetAsync(storage.get(), 0, static_cast<size_t>(bytes), stream_);
      err != cudaSuccess) {
    return CudaError(err, "zeroing an allocation");
  }
  Tensor t = MakeTensor(dtype, std::move(shape), storage.get());
  return Buffer{std::move(t), std::move(storage)};
}

void* CudaBackend::Scratch(std::shared_ptr<void>& buffer, int64_t& size, int64_t bytes) {
  if (bytes <= size && buffer != nullptr) return buffer.get();
  Launched(cudaStreamSynchronize(stream_), "scratch growth");  // the old buffer may be in use
  absl::StatusOr<std::shared_ptr<void>> grown = DeviceAlloc(bytes, info_.index);
  if (!grown.ok()) {
    Record(grown.status());
    return nullptr;
  }
  buffer = *std::move(grown);
  size = bytes;
  return buffer.get();
}

absl::StatusOr<const StepPlan*> CudaBackend::PlanStep(const StepBatch& batch) {
  const int64_t n = batch.num_tokens(), seqs = batch.num_seqs();
  const int64_t tables = static_cast<int64_t>(batch.block_tables.size());
  const int64_t logit_rows = static_cast<int64_t>(batch.logit_rows.size());
  // Layout (int32): tokens, positions, slots, token_seq [n]; query_start [seqs + 1];
  // context_lens [seqs]; block_tables; logit_rows.
  const int64_t total = 4 * n + 2 * seqs + 1 + tables + logit_rows;
  Launched(cudaSetDevice(info_.index), "select the device");  // the driving thread's device
  STRATA_RETURN_IF_ERROR(Sync());  // the previous step's copy out of the pinned buffer is done
  if (total > meta_host_size_) {
    if (meta_host_ != nullptr) cudaFreeHost(meta_host_);
    meta_host_ = nullptr;
    meta_host_size_ = 0;
    if (cudaError_t err = cudaMallocHost(reinterpret_cast<void**>(&meta_host_), total * 4);
        err != cudaSuccess) {
      return CudaError(err, "pinned step metadata");
    }
    meta_host_size_ = total;
  }
  int32_t* h = meta_host_;
  auto put = [&h](const int32_t* src, int64_t count) {
    if (count > 0) std::memcpy(h, src, count * 4);
    const int32_t* at = h;
    h += count;
    return at;
  };
  StepPlan& p = plan_;
  std::vector<int32_t> token_seq;
  p = PlanShape(batch, token_seq);
  const int32_t* at[8] = {put(batch.tokens.data(), n),        put(batch.positions.data(), n),
                          put(batch.slot_mapping.data(), n),  put(token_seq.data(), n),
                          put(batch.query_start.data(), seqs + 1),
                          put(batch.context_lens.data(), seqs),
                          put(batch.block_tables.data(), tables),
                          put(batch.logit_rows.data(), logit_rows)};
  if (total * 4 > meta_device_bytes_) {
    STRATA_ASSIGN_OR_RETURN(meta_device_, DeviceAlloc(total * 4, info_.index));
    meta_device_bytes_ = total * 4;
  }
  auto* device = static_cast<int32_t*>(meta_device_.get());
  if (cudaError_t err = cudaMemcpyAsync(device, meta_host_, total * 4, cudaMemcpyHostToDevice, stream_);
      err != cudaSuccess) {
    return CudaError(err, "step metadata copy");
  }
  auto dev = [&](int i) { return device + (at[i] - meta_host_); };
  p.tokens = dev(0);
  p.positions = dev(1);
  p.slot_mapping = dev(2);
  p.token_seq = dev(3);
  p.query_start = dev(4);
  p.context_lens = dev(5);
  p.block_tables = dev(6);
  p.logit_rows = dev(7);
  return &plan_;
}

void CudaBackend::MatMulGroup(const Tensor& x, absl::Span<const Weight* const> ws,
                              absl::Span<const Weight* const> biases,
                              absl::Span<const Tensor> ys) {
  const int64_t m = x.Rows(), k = x.Cols();
  bool ok = ElemOf(x.dtype).has_value() && ws.size() == ys.size() && !ws.empty();
  for (size_t i = 0; ok && i < ws.size(); ++i) {
    ok = ws[i]->view.dtype == DType::kBF16 && ws[i]->view.Cols() == k &&
         ElemOf(ys[i].dtype).has_value() && ys[i].NumElements() == m * ws[i]->view.Rows();
  }
  if (!Check(ok, "MatMul: bf16 weights [n, k], x [m, k] and y [m, n] of f32 or bf16")) return;
  const void* xb = x.data;
  if (x.dtype == DType::kF32) {  // the weights are bf16: so is the product's input
    void* converted = Scratch(x_bf16_, x_bf16_bytes_, m * k * 2);
    if (converted == nullptr) return;
    Record(kc::LaunchConvert({x.data, kc::Elem::kF32, converted, kc::Elem::kBf16, m * k}, stream_));
    xb = converted;
  }
  for (size_t i = 0; i < ws.size() && error_.ok(); ++i) {
    const int64_t n = ws[i]->view.Rows();
    Record(matmul_->Run(xb, ws[i]->view.data, ys[i].data, ys[i].dtype == DType::kF32, m, n, k,
                        stream_));
    if (i < biases.size() && biases[i] != nullptr) {
      kc::UpdateParams p;
      p.op = kc::UpdateParams::Op::kBias;
      p.bias = reinterpret_cast<const float*>(biases[i]->view.data);
      p.cols = n;
      Update(ys[i], p, "MatMul bias");
    }
  }
}

void CudaBackend::RunNorm(const Tensor& x, const Tensor* delta, const NormParams& params,
                          const Tensor& y) {
  const auto elem = ElemOf(x.dtype);
  const int64_t dim = x.Cols();
  if (!Check(elem && SameShape(x, y) && (delta == nullptr || SameShape(x, *delta)) &&
                 params.weight != nullptr && params.weight->view.dtype == DType::kF32 &&
                 params.weight->view.NumElements() == dim,
             "Norm: shapes")) {
    return;
  }
  kc::NormParams p;
  p.x = x.data;
  p.delta = delta != nullptr ? delta->data : nullptr;
  p.weight = reinterpret_cast<const float*>(params.weight->view.data);
  p.bias = params.kind == NormKind::kLayer && params.bias != nullptr
               ? reinterpret_cast<const float*>(params.bias->view.data)
               : nullptr;
  p.y = y.data;
  p.rows = x.Rows();
  p.dim = dim;
  p.eps = params.eps;
  p.layer_norm = params.kind == NormKind::kLayer;
  p.elem = *elem;
  Record(kc::LaunchNorm(p, stream_));
}

void CudaBackend::Rope(const StepPlan& plan, const Tensor& x, const RopeParams& params) {
  const auto elem = ElemOf(x.dtype);
  const int64_t heads = x.shape.size() == 3 ? x.shape[1] : 0;
  if (!Check(elem && heads > 0 && x.shape[0] == plan.num_tokens,
             "Rope: x must be [num_tokens, heads, head_dim] of f32 or bf16")) {
    return;
  }
  kc::RopeParams p;
  p.x = x.data;
  p.positions = plan.positions;
  p.inv_freq = reinterpret_cast<const float*>(params.inv_freq->view.data);
  if (params.long_inv_freq != nullptr && params.long_threshold > 0) {
    p.long_inv_freq = reinterpret_cast<const float*>(params.long_inv_freq->view.data);
    p.token_seq = plan.token_seq;
    p.context_lens = plan.context_lens;
    p.long_threshold = params.long_threshold;
    p.long_mscale = params.long_mscale;
  }
  p.mscale = params.mscale;
  p.num_tokens = plan.num_tokens;
  p.num_heads = heads;
  p.head_dim = x.Cols();
  p.rotary_dim = params.rotary_dim;
  p.interleaved = params.layout == RopeLayout::kInterleaved;
  p.elem = *elem;
  Record(kc::LaunchRope(p, stream_));
}

void CudaBackend::CopyColumns(const Tensor& src, int64_t src_col, const Tensor& dst,
                              int64_t dst_col, int64_t width) {
  const int64_t rows = src.Rows();
  if (!Check(src.dtype == dst.dtype && dst.Rows() == rows && src_col >= 0 && dst_col >= 0 &&
                 width >= 0 && src_col + width <= src.Cols() && dst_col + width <= dst.Cols(),
             "CopyColumns: shapes")) {
    return;
  }
  if (rows == 0 || width == 0) return;
  const int64_t elem = ElementsToBytes(src.dtype, 1);
  Launched(cudaMemcpy2DAsync(dst.data + dst_col * elem, dst.Cols() * elem,
                             src.data + src_col * elem, src.Cols() * elem, width * elem, rows,
                             cudaMemcpyDeviceToDevice, stream_),
           "CopyColumns");
}

void CudaBackend::WriteKv(const StepPlan& plan, const Tensor& k, const Tensor& v,
                          const KvLayer& cache) {
  const auto elem = ElemOf(k.dtype);
  const bool has_v = !cache.v.empty();
  const int64_t v_dim = cache.v_head_dim > 0 ? cache.v_head_dim : cache.head_dim;
  if (!Check(elem && cache.k.dtype == DType::kBF16 && (!has_v || cache.v.dtype == DType::kBF16) &&
                 k.NumElements() == plan.num_tokens * cache.num_kv_heads * cache.head_dim &&
                 (!has_v || (v.dtype == k.dtype &&
                             v.NumElements() == plan.num_tokens * cache.num_kv_heads * v_dim)),
             "WriteKv: k/v of [num_tokens, kv_heads, head_dim] and a bf16 cache")) {
    return;
  }
  kc::WriteKvParams p;
  p.k = k.data;
  p.v = has_v ? v.data : nullptr;
  p.k_cache = cache.k.data;
  p.v_cache = has_v ? cache.v.data : nullptr;
  p.slot_mapping = plan.slot_mapping;
  p.num_tokens = plan.num_tokens;
  p.num_kv_heads = cache.num_kv_heads;
  p.head_dim = cache.head_dim;
  p.v_head_dim = v_dim;
  p.elem = *elem;
  Record(kc::LaunchWriteKv(p, stream_));
}

void CudaBackend::Attention(const StepPlan& plan, const Tensor& q, const KvLayer& cache,
                            const AttentionParams& params, const Tensor& out) {
  const int64_t dv = params.v_head_dim > 0 ? params.v_head_dim : params.head_dim;
  if (dv != params.head_dim || cache.v.empty()) {
    Unsupported("Attention: the GPU kernels need V stored, with V's head dim equal to K's "
                "(multi-head latent attention is not on the GPU yet)");
    return;
  }
  if (!Check(q.dtype == DType::kBF16 && out.dtype == DType::kBF16 &&
                 cache.k.dtype == DType::kBF16 && cache.v.dtype == DType::kBF16 &&
                 q.NumElements() == plan.num_tokens * params.num_heads * params.head_dim &&
                 out.NumElements() == plan.num_tokens * params.num_heads * dv &&
                 cache.head_dim == params.head_dim && cache.num_kv_heads == params.num_kv_heads,
             "Attention: bf16 q, out and cache of matching shapes")) {
    return;
  }
  kc::PagedAttentionArgs a;
  a.q = q.data;
  a.k_cache = cache.k.data;
  a.v_cache = cache.v.data;
  a.out = out.data;
  a.block_tables = plan.block_tables;
  a.query_start = plan.query_start;
  a.context_lens = plan.context_lens;
  a.num_seqs = plan.num_seqs;
  a.max_blocks_per_seq = std::max<int64_t>(plan.max_blocks_per_seq, 1);
  a.num_heads = params.num_heads;
  a.num_kv_heads = params.num_kv_heads;
  a.head_dim = params.head_dim;
  a.block_size = cache.block_size;
  a.max_query_len = plan.max_query_len;
  a.max_context_len = plan.max_context_len;
  a.scale = params.scale;
  a.softcap = params.softcap;
  a.sliding_window = params.sliding_window;
  a.workspace_bytes = kc::AttentionWorkspaceBytes(plan.num_seqs, params.num_heads, params.head_dim,
                                                  plan.max_context_len);
  if (a.workspace_bytes > 0) {
    a.workspace = Scratch(attention_ws_, attention_ws_bytes_, a.workspace_bytes);
    if (a.workspace == nullptr) return;
  }
  Record(kc::LaunchPagedAttention(a, kc::AttentionDType::kBf16, stream_));
}

}  // namespace

absl::StatusOr<DeviceInfo> CudaDeviceInfo(int index) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    cudaGetLastError();
    return absl::FailedPreconditionError(absl::StrCat(
        "device 'cuda': no CUDA device is visible (cudaGetDeviceCount: ",
        err != cudaSuccess ? cudaGetErrorString(err) : "0 devices", ")"));
  }
  if (index < 0) index = 0;
  if (index >= count) {
    return absl::FailedPreconditionError(
        absl::StrCat("device 'cuda:", index, "': this host has ", count, " CUDA device(s)"));
  }
  cudaDeviceProp prop{};
  if (cudaError_t e = cudaGetDeviceProperties(&prop, index); e != cudaSuccess) {
    return absl::FailedPreconditionError(
        absl::StrCat("device 'cuda:", index, "': ", cudaGetErrorString(e)));
  }
  if (prop.major < 8) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device 'cuda:", index, "' (", prop.name, ") has compute capability ", prop.major, ".",
        prop.minor, "; Strata's kernels need 8.0 or later (bf16 tensor cores)"));
  }
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaError_t e = cudaSetDevice(index); e != cudaSuccess) {
    return absl::FailedPreconditionError(absl::StrCat("device 'cuda:", index, "': ", cudaGetErrorString(e)));
  }
  if (cudaError_t e = cudaMemGetInfo(&free_bytes, &total_bytes); e != cudaSuccess) {
    return absl::FailedPreconditionError(absl::StrCat("device 'cuda:", index, "': ", cudaGetErrorString(e)));
  }
  DeviceInfo info;
  info.kind = DeviceKind::kCuda;
  info.index = index;
  info.count = count;
  info.name = prop.name;
  info.memory_total = static_cast<int64_t>(total_bytes);
  info.memory_free = static_cast<int64_t>(free_bytes);
  info.activation_dtype = DType::kBF16;
  info.kv_dtype = DType::kBF16;
  info.weight_dtype = DType::kBF16;
  info.host_memory = false;
  return info;
}

absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int index) {
  STRATA_ASSIGN_OR_RETURN(DeviceInfo info, CudaDeviceInfo(index));
  cudaStream_t stream = nullptr;
  if (cudaError_t err = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
      err != cudaSuccess) {
    return CudaError(err, "stream");
  }
  absl::StatusOr<std::unique_ptr<CudaMatMul>> matmul = CudaMatMul::Create(kMatMulWorkspace);
  if (!matmul.ok()) {
    cudaStreamDestroy(stream);
    return matmul.status();
  }
  return std::unique_ptr<Backend>(new CudaBackend(std::move(info), stream, *std::move(matmul)));
}

}  // namespace strata

// The CUDA backend. Every op is queued on one stream and returns at once; argument errors and
// launch errors are recorded (the first one is kept) and returned by the next Sync(), which
// also waits for the stream and collects asynchronous CUDA errors.
#include "worker/backend/cuda_backend.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <type_traits>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/philox.h"
#include "common/status.h"
#include "common/step.h"
#include "common/strings.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/ops.h"
#include "worker/backend/cuda_matmul.h"

namespace strata {
namespace {

namespace kc = kernels::cuda;

constexpr int64_t kMatMulWorkspace = int64_t{32} << 20;
// Step memory reserved at load (Reserve): the decode attention partials, at most; and the bias
// and penalty entries of one step's sampling.
constexpr int64_t kAttentionWorkspace = int64_t{256} << 20;
constexpr int64_t kReservedEditEntries = int64_t{1} << 20;
constexpr int64_t kMaxSeqsPerAttentionLaunch = 65535;  // a grid dimension
// Decode steps recorded as graphs: of 1, 2, 4, 8 sequences, then every multiple of 8, up to
// the reserved maximum (at most this many).
constexpr int64_t kMaxGraphSeqs = 256;

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
  CudaBackend(DeviceInfo info, cudaStream_t stream, std::unique_ptr<CudaMatMul> matmul, bool eager,
              bool hopper_prefill)
      : info_(std::move(info)),
        stream_(stream),
        matmul_(std::move(matmul)),
        eager_(eager),
        hopper_prefill_(hopper_prefill) {}
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    graphs_.clear();
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
  absl::Status Reserve(const StepLimits& limits) override;

  void CopyFromHost(const void* host, const Tensor& dst) override {
    Launched(cudaMemcpyAsync(dst.data, host, dst.Bytes(), cudaMemcpyHostToDevice, stream_),
             "copy to the device");
  }
  void CopyToHost(const Tensor& src, void* host) override {
    Launched(cudaMemcpyAsync(host, src.data, src.Bytes(), cudaMemcpyDeviceToHost, stream_),
             "copy to the host");
  }
  absl::Status Sync() override {
    // Collectives on the stream are waited for within their bound first. If that fails (a
    // peer died, the communicator is broken) the step failed with it, whatever else did.
    if (stream_wait_) {
      if (absl::Status waited = stream_wait_(); !waited.ok()) {
        error_ = absl::OkStatus();
        return waited;
      }
    }
    Launched(cudaStreamSynchronize(stream_), "step");
    absl::Status error = std::move(error_);
    error_ = absl::OkStatus();
    return error;
  }

  void* stream() const override { return stream_; }
  void SetStreamWait(std::function<absl::Status()> wait) override {
    stream_wait_ = std::move(wait);
  }

  absl::StatusOr<const StepPlan*> PlanStep(const StepBatch& batch) override;

  std::vector<int64_t> GraphBatches() const override { return graph_batches_; }
  absl::Status RunGraph(int64_t batch, absl::FunctionRef<absl::Status()> queue) override;

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
  void MoeRoute(const Tensor& logits, const MoeRouting& routing, const Tensor& ids,
                const Tensor& weights) override;
  void MoeFfn(const Tensor& x, const Tensor& ids, const Tensor& weights,
              const ExpertWeights& experts, const Tensor& y) override;

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
  // Device scratch of at least `bytes`, grown (never shrunk) on demand; a growth after
  // Reserve() (a step beyond the limits reserved) is logged.
  void* Scratch(std::shared_ptr<void>& buffer, int64_t& size, int64_t bytes, const char* what);
  // Pinned host and device memory for `values` int32 step metadata values.
  absl::Status ReserveMeta(int64_t values);
  // Sync() inside a step, before the host reads or replaces what the queue uses (a copy into
  // pageable memory would wait for the queue unbounded): false if it failed, its error kept
  // for the step's own Sync().
  bool Drained() {
    absl::Status done = Sync();
    if (done.ok()) return true;
    error_ = std::move(done);
    return false;
  }
  // Under --hopper-prefill, says when a layer's attention shape keeps the portable kernel.
  void WarnIfPortablePrefill(const AttentionShape& shape, int64_t block_size) const {
    kc::AttentionDesc desc;
    desc.head_dim = shape.head_dim;
    desc.v_head_dim = shape.v_head_dim;
    desc.v_in_k = shape.v_in_k;
    desc.fp8_kv = info_.kv_dtype == DType::kF8E4M3;
    desc.hopper = true;
    desc.sm = 90;  // checked when the backend was made
    desc.block_size = block_size;
    absl::StatusOr<const kc::AttentionKernel*> kernel = kc::FindAttentionKernel(desc);
    if (kernel.ok() && (*kernel)->sm == 0) {
      STRATA_LOG_WARN("cuda:{}: --hopper-prefill: prefill attention of {} keeps the portable "
                      "kernel {} (the Hopper kernel takes head dims 64 and 128 with V stored, a "
                      "bf16 cache, and block sizes that are multiples of 8 dividing 128, or "
                      "multiples of 128)",
                      info_.index, desc.ToString(), (*kernel)->name);
    }
  }
  // Records the ops `queue` queues as the graph of padded steps of `batch` sequences.
  absl::Status RecordStep(int64_t batch, absl::FunctionRef<absl::Status()> queue);
  // The plan of a decode step of batch.num_seqs() <= seqs sequences padded to `seqs`, in the
  // fixed layout the recorded graphs read (see PlanStep).
  absl::StatusOr<const StepPlan*> PlanGraphStep(const StepBatch& batch, int64_t seqs);
  struct GraphExecDeleter {
    void operator()(cudaGraphExec_t exec) const { cudaGraphExecDestroy(exec); }
  };
  using GraphExec = std::unique_ptr<std::remove_pointer_t<cudaGraphExec_t>, GraphExecDeleter>;

  DeviceInfo info_;
  cudaStream_t stream_;
  std::unique_ptr<CudaMatMul> matmul_;
  const bool eager_;  // records no graphs
  const bool hopper_prefill_;  // prefill attention on the Hopper kernel where it fits
  std::function<absl::Status()> stream_wait_;  // SetStreamWait
  absl::Status error_;
  bool reserved_ = false;  // Reserve() has sized the step memory
  // The step plan: metadata packed in pinned host memory, copied to the device in one transfer.
  StepPlan plan_;
  int32_t* meta_host_ = nullptr;
  int64_t meta_host_size_ = 0;  // int32 values, of meta_device_ too
  std::shared_ptr<void> meta_device_;
  std::shared_ptr<void> x_bf16_;  // f32 activations converted for a matmul
  int64_t x_bf16_bytes_ = 0;
  std::shared_ptr<void> attention_ws_;
  int64_t attention_ws_bytes_ = 0;
  int64_t attention_seqs_ = 1;  // decode sequences the reserved partials hold at the longest context
  std::shared_ptr<void> sample_scratch_;  // ids, logprobs, parameters, edited rows
  int64_t sample_scratch_bytes_ = 0;
  std::shared_ptr<void> expert_scratch_;  // MoeFfn: the plan and the products
  int64_t expert_scratch_bytes_ = 0;
  // Recorded decode steps, by their padded size (graph_batches_). A recording holds the
  // addresses of the step metadata and scratch it was recorded with: when any of them is
  // reallocated, the recordings are dropped and made again at their size's next step.
  std::vector<int64_t> graph_batches_;
  int64_t graph_blocks_ = 0;      // block table columns of a padded step (the reserved maximum)
  int64_t graph_block_size_ = 0;
  absl::flat_hash_map<int64_t, GraphExec> graphs_;
  bool recording_ = false;
  bool recording_failed_ = false;  // padded steps run op by op from then on
};

// The part of an upload (or scratch) at byte `offset`.
template <class T>
T* At(std::byte* base, int64_t offset) {
  return reinterpret_cast<T*>(base + offset);
}

// Parts of one host -> device upload at 16-byte aligned offsets.
class Staging {
 public:
  template <class T>
  int64_t Add(const std::vector<T>& part) {
    const int64_t at = static_cast<int64_t>(bytes_.size());  // aligned: every part is padded
    bytes_.resize(Aligned(at + static_cast<int64_t>(part.size() * sizeof(T))));
    if (!part.empty()) std::memcpy(bytes_.data() + at, part.data(), part.size() * sizeof(T));
    return at;
  }
  int64_t size() const { return static_cast<int64_t>(bytes_.size()); }
  const std::byte* data() const { return bytes_.data(); }
  static int64_t Aligned(int64_t bytes) { return (bytes + 15) / 16 * 16; }

 private:
  std::vector<std::byte> bytes_;
};

// Appends row `row`'s logits processors (bias, then the penalties, as ApplyLogitsProcessors
// applies them) to `ids` / `values`: a repeated bias id's entries next to each other in list
// order, ids outside the vocabulary dropped.
kc::LogitsEditRow PackLogitsEdit(int32_t row, const SamplingParams& p, const TokenHistory* history,
                                 int64_t vocab, std::vector<int32_t>& ids,
                                 std::vector<float>& values) {
  auto in_vocab = [vocab](int32_t id) { return id >= 0 && id < vocab; };
  auto at = [&ids] { return static_cast<int32_t>(ids.size()); };
  kc::LogitsEditRow e;
  e.row = row;
  e.bias_begin = at();
  std::vector<std::pair<int32_t, float>> bias;
  for (const auto& entry : p.logit_bias) {
    if (in_vocab(entry.first)) bias.push_back(entry);
  }
  std::stable_sort(bias.begin(), bias.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [id, value] : bias) {
    ids.push_back(id);
    values.push_back(value);
  }
  e.bias_end = at();
  e.seen_begin = e.seen_end = e.counted_begin = e.counted_end = at();
  if (history == nullptr) return e;
  if (p.repetition_penalty != 1.0f) {
    e.repetition_penalty = p.repetition_penalty;
    for (int32_t id : history->seen()) {
      if (!in_vocab(id)) continue;
      ids.push_back(id);
      values.push_back(0.0f);
    }
  }
  e.seen_end = e.counted_begin = at();
  if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
    e.frequency_penalty = p.frequency_penalty;
    e.presence_penalty = p.presence_penalty;
    for (const auto& [id, count] : history->output_counts()) {
      if (!in_vocab(id)) continue;
      ids.push_back(id);
      values.push_back(static_cast<float>(count));
    }
  }
  e.counted_end = at();
  return e;
}

// Every row is sampled on the device by the host sampler's rules, and only ids and logprobs
// leave it: logit bias and penalties on a copy of the row (bit for bit as the host applies
// them), then greedy, or temperature, top-k, top-p and min-p with the host's Philox number;
// logprobs from the raw row. The device sums fixed-point masses, not the host's doubles, so a
// draw within rounding of a boundary may take the neighbouring token (kernels/cuda/ops.h
// LaunchSample), and logprobs may differ from the host's in the last bits.
absl::Status CudaBackend::Sample(const Tensor& logits, absl::Span<const SamplingRow> rows,
                                 std::vector<SampledToken>& out) {
  static_assert(SamplingParams::kMaxLogprobs <= kc::kMaxTopLogprobs);
  const int64_t n = static_cast<int64_t>(rows.size()), vocab = logits.Cols();
  if (logits.dtype != DType::kF32 || logits.Rows() != n) {
    return absl::InvalidArgumentError("cuda backend: Sample: one f32 logits row per sample");
  }
  std::vector<int32_t> edited;   // rows whose bias and penalties apply: copied, then edited
  std::vector<kc::LogitsEditRow> edits;  // [edited]: row = the copy's row
  std::vector<int32_t> edit_ids;
  std::vector<float> edit_values;
  std::vector<kc::SampleRowParams> drawn, drawn_edited;  // rows of logits, rows of the copies
  std::vector<int32_t> with_logprobs;  // rows that want them
  std::vector<kc::LogprobRowParams> logprob_rows;
  for (int64_t r = 0; r < n; ++r) {
    const SamplingParams& p = *rows[r].params;
    const bool edit = !p.logit_bias.empty() || p.HasPenalties();
    int32_t row = static_cast<int32_t>(r);
    if (edit) {
      row = static_cast<int32_t>(edited.size());
      edits.push_back(PackLogitsEdit(row, p, rows[r].history, vocab, edit_ids, edit_values));
      edited.push_back(static_cast<int32_t>(r));
    }
    if (!p.IsGreedy()) {
      (edit ? drawn_edited : drawn)
          .push_back({row, 1.0f / p.temperature, p.top_k, p.top_p, p.min_p,
                      PhiloxUniform(p.seed, p.stream, rows[r].position)});
    }
    if (p.logprobs >= 0) {
      with_logprobs.push_back(static_cast<int32_t>(r));
      logprob_rows.push_back({static_cast<int32_t>(r), static_cast<int32_t>(edit ? n + row : r),
                              std::min(p.logprobs, kc::kMaxTopLogprobs)});
    }
  }
  const int64_t copies = static_cast<int64_t>(edited.size());
  const int64_t with = static_cast<int64_t>(with_logprobs.size());
  // Scratch: [n + copies] ids out (every row's on `logits`, then the copies'), [with] logprobs
  // out, the uploaded parameters, then [copies, vocab] edited rows.
  Staging up;
  const int64_t at_edited = up.Add(edited), at_edits = up.Add(edits);
  const int64_t at_edit_ids = up.Add(edit_ids), at_edit_values = up.Add(edit_values);
  const int64_t at_drawn = up.Add(drawn), at_drawn_edited = up.Add(drawn_edited);
  const int64_t at_logprob_rows = up.Add(logprob_rows);
  const int64_t ids_bytes = Staging::Aligned((n + copies) * 4);
  const int64_t logprobs_bytes = Staging::Aligned(with * static_cast<int64_t>(sizeof(kc::LogprobsOut)));
  const int64_t params_at = ids_bytes + logprobs_bytes, rows_at = params_at + up.size();
  auto* base = static_cast<std::byte*>(Scratch(sample_scratch_, sample_scratch_bytes_,
                                               rows_at + copies * vocab * 4, "the sampling memory"));
  if (base == nullptr) return Sync();
  auto* ids = reinterpret_cast<int32_t*>(base);
  auto* logprobs = reinterpret_cast<kc::LogprobsOut*>(base + ids_bytes);
  std::byte* params = base + params_at;
  auto* copied = reinterpret_cast<float*>(base + rows_at);
  Launched(cudaMemcpyAsync(params, up.data(), up.size(), cudaMemcpyHostToDevice, stream_),
           "sampling parameters");
  const float* raw = logits.As<float>();
  if (copies < n) {  // rows decided on the raw logits (the greedy pass covers them all)
    Record(kc::LaunchGreedy({raw, ids, n, vocab, kNonFiniteLogits}, stream_));
    Record(kc::LaunchSample({raw, At<kc::SampleRowParams>(params, at_drawn), ids,
                             static_cast<int64_t>(drawn.size()), vocab, kNonFiniteLogits},
                            stream_));
  }
  if (copies > 0) {
    int32_t* copy_ids = ids + n;
    Record(kc::LaunchGatherRows({raw, copied, At<int32_t>(params, at_edited), copies, vocab * 4},
                                stream_));
    Record(kc::LaunchLogitsEdit({copied, At<kc::LogitsEditRow>(params, at_edits),
                                 At<int32_t>(params, at_edit_ids),
                                 At<float>(params, at_edit_values), copies, vocab},
                                stream_));
    Record(kc::LaunchGreedy({copied, copy_ids, copies, vocab, kNonFiniteLogits}, stream_));
    Record(kc::LaunchSample({copied, At<kc::SampleRowParams>(params, at_drawn_edited), copy_ids,
                             static_cast<int64_t>(drawn_edited.size()), vocab, kNonFiniteLogits},
                            stream_));
  }
  Record(kc::LaunchLogprobs({raw, At<kc::LogprobRowParams>(params, at_logprob_rows), ids,
                             logprobs, with, vocab},
                            stream_));
  std::vector<int32_t> device_ids(n + copies);
  std::vector<kc::LogprobsOut> device_logprobs(with);
  Launched(cudaMemcpyAsync(device_ids.data(), ids, (n + copies) * 4, cudaMemcpyDeviceToHost, stream_),
           "sampled ids");
  Launched(cudaMemcpyAsync(device_logprobs.data(), logprobs, with * sizeof(kc::LogprobsOut),
                           cudaMemcpyDeviceToHost, stream_),
           "logprobs");
  STRATA_RETURN_IF_ERROR(Sync());
  out.assign(n, SampledToken{});
  for (int64_t r = 0; r < n; ++r) out[r].token = device_ids[r];
  for (int64_t i = 0; i < copies; ++i) out[edited[i]].token = device_ids[n + i];
  for (int64_t i = 0; i < with; ++i) {
    SampledToken& t = out[with_logprobs[i]];
    if (t.token == kNonFiniteLogits) continue;  // not a distribution: no logprobs
    const kc::LogprobsOut& lp = device_logprobs[i];
    TokenLogprobs& dst = t.logprobs.emplace();
    dst.logprob = lp.logprob;
    const int32_t top = logprob_rows[i].top_n < vocab ? logprob_rows[i].top_n : static_cast<int32_t>(vocab);
    dst.top_ids.assign(lp.top_ids, lp.top_ids + top);
    dst.top_logprobs.assign(lp.top_logprobs, lp.top_logprobs + top);
  }
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

void* CudaBackend::Scratch(std::shared_ptr<void>& buffer, int64_t& size, int64_t bytes,
                           const char* what) {
  if (bytes <= size && buffer != nullptr) return buffer.get();
  if (recording_) {  // its ops ran just before with this memory: cannot happen
    Record(absl::InternalError(
        absl::StrCat(what, " outgrew its memory while a step was recorded")));
    return nullptr;
  }
  // They hold the old buffer's address (the sampling memory is never recorded).
  if (&buffer != &sample_scratch_) graphs_.clear();
  if (reserved_) {  // grown by half again at least, so a creeping workload reallocates rarely
    bytes = std::max(bytes, size + size / 2);
    STRATA_LOG_WARN("cuda:{}: a step beyond the memory reserved at load: {} grows from {} to {} "
                    "bytes", info_.index, what, size, bytes);
  }
  if (!Drained()) return nullptr;  // the old buffer may be in use
  absl::StatusOr<std::shared_ptr<void>> grown = DeviceAlloc(bytes, info_.index);
  if (!grown.ok()) {
    Record(grown.status());
    return nullptr;
  }
  buffer = *std::move(grown);
  size = bytes;
  return buffer.get();
}

absl::Status CudaBackend::ReserveMeta(int64_t values) {
  graphs_.clear();  // they read the old buffer
  if (meta_host_ != nullptr) cudaFreeHost(meta_host_);
  meta_host_ = nullptr;
  meta_host_size_ = 0;
  meta_device_.reset();
  if (cudaError_t err = cudaMallocHost(reinterpret_cast<void**>(&meta_host_), values * 4);
      err != cudaSuccess) {
    meta_host_ = nullptr;
    return CudaError(err, "pinned step metadata");
  }
  STRATA_ASSIGN_OR_RETURN(meta_device_, DeviceAlloc(values * 4, info_.index));
  meta_host_size_ = values;
  return absl::OkStatus();
}

// MoeFfn's scratch for `tokens` tokens of `hidden` values routed to `top_k` of `local` experts
// of `ffn` columns, activations of `elem` bytes, as byte offsets: the plan (offsets at 0, a
// position's token, a slot's position, the matmuls' tiles and where each launch's tiles
// begin), the gated products and the f32 down products by position; `size` in all.
struct ExpertScratch {
  ExpertScratch(int64_t tokens, int64_t hidden, int64_t ffn, int64_t top_k, int64_t local,
                int64_t elem) {
    const int64_t slots = tokens * top_k;
    rows = Staging::Aligned((local + 1) * 4);
    positions = rows + Staging::Aligned(slots * 4);
    tiles = positions + Staging::Aligned(slots * 4);
    chunk_tiles = tiles + Staging::Aligned(kc::MoeMaxTiles(slots, local) * 8);
    gated = chunk_tiles + Staging::Aligned((kc::MoeChunks(local) + 1) * 4);
    out = gated + Staging::Aligned(slots * ffn * elem);
    size = out + Staging::Aligned(slots * hidden * 4);
  }
  int64_t rows, positions, tiles, chunk_tiles, gated, out, size;
};

// Sampling scratch of a step of `rows` rows (see Sample): ids and logprobs out, the parameters
// (at most kReservedEditEntries bias and penalty entries), then a row of logits per row.
int64_t SampleScratchBytes(int64_t rows, int64_t vocab) {
  const int64_t out = 2 * 4 + sizeof(kc::LogprobsOut);
  const int64_t in = 4 + sizeof(kc::LogitsEditRow) + 2 * sizeof(kc::SampleRowParams) +
                     sizeof(kc::LogprobRowParams);
  return rows * (out + in + vocab * 4) + 10 * 16 + kReservedEditEntries * 8;
}

absl::Status CudaBackend::Reserve(const StepLimits& l) {
  if (l.max_tokens < 1 || l.max_logit_rows < 0 || l.max_blocks_per_seq < 0 || l.vocab < 0 ||
      l.num_heads < 0 || l.max_graph_seqs < 0 || l.hidden < 0 ||
      l.expert_ffn < 0 || l.num_experts < 0 || l.top_k < 0) {
    return absl::InvalidArgumentError("cuda backend: Reserve: negative limits");
  }
  if (cudaError_t err = cudaSetDevice(info_.index); err != cudaSuccess) {
    return CudaError(err, "select the device");
  }
  STRATA_RETURN_IF_ERROR(Sync());  // nothing in flight uses the buffers replaced
  // Attention partials of as many decode sequences as logit rows (up to kAttentionWorkspace;
  // more sequences than fit run in several launches), for the layer whose layout needs most.
  int64_t per_seq = 0;
  for (const AttentionShape& shape : l.attention) {
    if (shape.head_dim < 0 || shape.v_head_dim < 0) {
      return absl::InvalidArgumentError("cuda backend: Reserve: negative head dims");
    }
    if (hopper_prefill_) WarnIfPortablePrefill(shape, l.block_size);
    per_seq = std::max(per_seq, kc::AttentionWorkspaceBytes(
                                    1, l.num_heads, shape.head_dim,
                                    l.max_blocks_per_seq * l.block_size, shape.v_head_dim,
                                    shape.v_in_k));
  }
  if (per_seq > 0) {
    attention_seqs_ = std::max<int64_t>(1, std::min(std::max<int64_t>(l.max_logit_rows, 1),
                                                    kAttentionWorkspace / per_seq));
    if (Scratch(attention_ws_, attention_ws_bytes_, attention_seqs_ * per_seq, "attention") ==
        nullptr) {
      return Sync();
    }
  }
  // Recorded decode steps: of sizes whose metadata, logits and attention partials (one launch)
  // fit what is reserved here. Their block tables have the longest context's columns.
  graphs_.clear();
  graph_batches_.clear();
  recording_failed_ = false;
  graph_blocks_ = std::max<int64_t>(l.max_blocks_per_seq, 1);
  graph_block_size_ = l.block_size;
  int64_t graph_seqs = std::min({l.max_graph_seqs, l.max_tokens, l.max_logit_rows, kMaxGraphSeqs});
  if (eager_) graph_seqs = 0;
  if (per_seq > 0) graph_seqs = std::min(graph_seqs, attention_seqs_);
  if (l.block_size < 1 || graph_blocks_ * l.block_size > (int64_t{1} << 30)) graph_seqs = 0;
  for (int64_t b = 1; b <= graph_seqs; b = b < 8 ? 2 * b : b + 8) graph_batches_.push_back(b);
  if (graph_seqs > 0 && graph_batches_.back() != graph_seqs) graph_batches_.push_back(graph_seqs);
  // Metadata: every token's four values, a sequence per token at most, and block tables for
  // as many sequences as logit rows (decode sequences) at the longest context; or a padded
  // decode step's (PlanGraphStep).
  const int64_t seqs = l.max_tokens;
  const int64_t tables = std::max<int64_t>(l.max_logit_rows, 1) * l.max_blocks_per_seq;
  const int64_t values = std::max(4 * l.max_tokens + 2 * seqs + 1 + tables + l.max_logit_rows,
                                  PaddedDecodeLayout(graph_seqs, graph_blocks_).size);
  if (values > meta_host_size_) STRATA_RETURN_IF_ERROR(ReserveMeta(values));
  if (l.expert_ffn > 0 &&
      Scratch(expert_scratch_, expert_scratch_bytes_,
              ExpertScratch(l.max_tokens, l.hidden, l.expert_ffn, l.top_k, l.num_experts, 2).size,
              "the experts' memory") == nullptr) {
    return Sync();
  }
  if (l.vocab > 0 && l.max_logit_rows > 0 &&
      Scratch(sample_scratch_, sample_scratch_bytes_, SampleScratchBytes(l.max_logit_rows, l.vocab),
              "the sampling memory") == nullptr) {
    return Sync();
  }
  reserved_ = true;
  return absl::OkStatus();
}

absl::StatusOr<const StepPlan*> CudaBackend::PlanStep(const StepBatch& batch) {
  const int64_t n = batch.num_tokens(), seqs = batch.num_seqs();
  const int64_t tables = static_cast<int64_t>(batch.block_tables.size());
  const int64_t logit_rows = static_cast<int64_t>(batch.logit_rows.size());
  // Layout (int32): tokens, positions, slots, token_seq [n]; query_start [seqs + 1];
  // context_lens [seqs]; block_tables; logit_rows.
  const int64_t total = 4 * n + 2 * seqs + 1 + tables + logit_rows;
  if (!graph_batches_.empty() && IsDecodeStep(batch) && n <= graph_batches_.back() &&
      batch.max_blocks_per_seq <= graph_blocks_) {
    return PlanGraphStep(batch, *std::lower_bound(graph_batches_.begin(), graph_batches_.end(), n));
  }
  Launched(cudaSetDevice(info_.index), "select the device");  // the driving thread's device
  STRATA_RETURN_IF_ERROR(Sync());  // the previous step's copy out of the pinned buffer is done
  if (total > meta_host_size_) {
    int64_t values = total;
    if (reserved_) {
      values = std::max(total, meta_host_size_ + meta_host_size_ / 2);
      STRATA_LOG_WARN("cuda:{}: a step beyond the memory reserved at load: its metadata grows "
                      "from {} to {} values", info_.index, meta_host_size_, values);
    }
    STRATA_RETURN_IF_ERROR(ReserveMeta(values));
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

// A padded decode step, in the layout every padded step shares (PaddedDecodeLayout).
absl::StatusOr<const StepPlan*> CudaBackend::PlanGraphStep(const StepBatch& batch, int64_t seqs) {
  const PaddedDecodeLayout layout(graph_batches_.back(), graph_blocks_);
  Launched(cudaSetDevice(info_.index), "select the device");  // the driving thread's device
  STRATA_RETURN_IF_ERROR(Sync());  // the previous step's copy out of the pinned buffer is done
  PackPaddedDecode(batch, seqs, layout, meta_host_);
  // The lists, then the block table columns the batch uses.
  auto* device = static_cast<int32_t*>(meta_device_.get());
  const size_t pitch = static_cast<size_t>(layout.blocks) * 4;
  const size_t width = static_cast<size_t>(std::max<int64_t>(batch.max_blocks_per_seq, 1)) * 4;
  cudaError_t err = cudaMemcpyAsync(device, meta_host_, layout.block_tables * 4,
                                    cudaMemcpyHostToDevice, stream_);
  if (err == cudaSuccess) {
    err = cudaMemcpy2DAsync(device + layout.block_tables, pitch, meta_host_ + layout.block_tables,
                            pitch, width, static_cast<size_t>(seqs), cudaMemcpyHostToDevice,
                            stream_);
  }
  if (err != cudaSuccess) return CudaError(err, "step metadata copy");
  StepPlan& p = plan_;
  p = StepPlan{};
  p.num_tokens = p.num_seqs = p.num_logit_rows = seqs;
  p.max_blocks_per_seq = layout.blocks;
  p.max_query_len = 1;
  p.max_context_len = layout.blocks * graph_block_size_;
  p.tokens = device + layout.tokens;
  p.positions = device + layout.positions;
  p.slot_mapping = device + layout.slots;
  p.token_seq = device + layout.token_seq;
  p.query_start = device + layout.query_start;
  p.context_lens = device + layout.context_lens;
  p.logit_rows = device + layout.logit_rows;
  p.block_tables = device + layout.block_tables;
  p.graph_batch = seqs;
  p.batch_seqs = batch.num_seqs();
  return &plan_;
}

absl::Status CudaBackend::RunGraph(int64_t batch, absl::FunctionRef<absl::Status()> queue) {
  if (const auto it = graphs_.find(batch); it != graphs_.end()) {
    Launched(cudaGraphLaunch(it->second.get(), stream_), "replaying a recorded step");
    return absl::OkStatus();
  }
  // The first step of this size (or the first since its recording was dropped): run it, which
  // also grows any scratch it needs, then record it (recording runs nothing). A recording that
  // fails does not fail the step, which has run: the backend warns and runs every later step
  // op by op, still padded. Except with collectives on the stream: NCCL needs every rank of
  // the group to record them, or none, so the step fails (its group is reloaded).
  STRATA_RETURN_IF_ERROR(queue());
  if (recording_failed_) return absl::OkStatus();
  STRATA_RETURN_IF_ERROR(Sync());
  if (absl::Status recorded = RecordStep(batch, queue); !recorded.ok()) {
    if (stream_wait_) {  // Internal: the group's state is not what it was (reload it)
      return absl::InternalError(absl::StrCat(
          "recording the decode step of ", batch, " sequences (its collectives too): ",
          recorded.message(), " (--eager runs every step op by op)"));
    }
    STRATA_LOG_WARN("cuda:{}: recording the decode step of {} sequences: {}; every step runs op "
                    "by op from now on",
                    info_.index, batch, StdSv(recorded.message()));
    graphs_.clear();
    recording_failed_ = true;
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::RecordStep(int64_t batch, absl::FunctionRef<absl::Status()> queue) {
  if (cudaError_t err = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
      err != cudaSuccess) {
    return CudaError(err, "stream capture");
  }
  recording_ = true;
  absl::Status status = queue();
  recording_ = false;
  cudaGraph_t graph = nullptr;
  const cudaError_t end = cudaStreamEndCapture(stream_, &graph);
  cudaGetLastError();  // a capture error is reported below, not again by the next launch
  if (status.ok()) status = error_;  // an op's argument or launch error while recording
  error_ = absl::OkStatus();
  if (status.ok() && end != cudaSuccess) status = CudaError(end, "stream capture");
  cudaGraphExec_t exec = nullptr;
  if (status.ok()) {
    if (cudaError_t err = cudaGraphInstantiate(&exec, graph, 0); err != cudaSuccess) {
      status = CudaError(err, "instantiating the recording");
    }
  }
  if (graph != nullptr) cudaGraphDestroy(graph);
  if (!status.ok()) return status;
  GraphExec& recorded = graphs_[batch];
  recorded.reset(exec);
  // Its launch data on the device now rather than at its first replay.
  Launched(cudaGraphUpload(exec, stream_), "uploading a recorded step");
  return absl::OkStatus();
}

// Routing on the device (kc::LaunchMoeRoute): the CPU's rules, one warp per token.
void CudaBackend::MoeRoute(const Tensor& logits, const MoeRouting& routing, const Tensor& ids,
                           const Tensor& weights) {
  const int64_t tokens = logits.Rows(), e = routing.num_experts, k = routing.top_k;
  if (!Check(logits.dtype == DType::kF32 && logits.Cols() == e && ids.dtype == DType::kI32 &&
                 ids.NumElements() == tokens * k && weights.dtype == DType::kF32 &&
                 weights.NumElements() == tokens * k &&
                 (routing.correction_bias == nullptr ||
                  (routing.correction_bias->view.dtype == DType::kF32 &&
                   routing.correction_bias->view.NumElements() == e)),
             "MoeRoute: f32 logits [tokens, experts], ids and weights [tokens, top_k], an f32 "
             "correction bias [experts]")) {
    return;
  }
  kc::MoeRouteParams p;
  p.logits = logits.As<float>();
  p.correction_bias = routing.correction_bias != nullptr
                          ? reinterpret_cast<const float*>(routing.correction_bias->view.data)
                          : nullptr;
  p.ids = ids.As<int32_t>();
  p.weights = weights.As<float>();
  p.num_tokens = tokens;
  p.num_experts = e;
  p.top_k = k;
  p.num_groups = routing.num_groups;
  p.topk_groups = routing.topk_groups;
  p.sigmoid = routing.scoring == MoeRouting::Scoring::kSigmoid;
  p.renormalize = routing.renormalize;
  p.routed_scale = routing.routed_scale;
  Record(kc::LaunchMoeRoute(p, stream_));
}

// The experts on the device, nothing waited for (kernels/cuda/moe.cu): the plan gives each
// local expert its positions and the matmuls their tiles (passes of 64 positions); one grouped
// matmul computes act(gate x) * up x at every position (x read by token), another the f32 down
// products; each token's sum runs in expert order and is rounded once into y. Experts with no
// token cost nothing but the plan's look; each expert's weights are read once per 64 of its
// positions.
void CudaBackend::MoeFfn(const Tensor& x, const Tensor& ids, const Tensor& weights,
                         const ExpertWeights& experts, const Tensor& y) {
  const int64_t tokens = x.Rows(), hidden = x.Cols(), top_k = ids.Cols();
  const int64_t local = static_cast<int64_t>(experts.gate.size());
  const auto elem = ElemOf(x.dtype);
  const int64_t ffn = local > 0 ? experts.gate[0].view.Rows() : 0;
  bool ok = elem && SameShape(x, y) && ids.dtype == DType::kI32 && ids.Rows() == tokens &&
            weights.dtype == DType::kF32 && weights.NumElements() == ids.NumElements() &&
            experts.up.size() == experts.gate.size() && experts.down.size() == experts.gate.size();
  for (int64_t e = 0; ok && e < local; ++e) {
    ok = experts.gate[e].view.dtype == DType::kBF16 && experts.up[e].view.dtype == DType::kBF16 &&
         experts.down[e].view.dtype == DType::kBF16 && experts.gate[e].view.Rows() == ffn &&
         experts.gate[e].view.Cols() == hidden && experts.up[e].view.Rows() == ffn &&
         experts.up[e].view.Cols() == hidden && experts.down[e].view.Rows() == hidden &&
         experts.down[e].view.Cols() == ffn;
  }
  if (!Check(ok, "MoeFfn: x and y [tokens, hidden], ids and weights [tokens, top_k], every "
                 "expert's gate and up bf16 [ffn, hidden] and down [hidden, ffn], one ffn for "
                 "all")) {
    return;
  }
  if (local == 0 || tokens == 0) {  // a rank that holds no expert adds nothing
    Launched(cudaMemsetAsync(y.data, 0, y.Bytes(), stream_), "MoeFfn: zeros");
    return;
  }
  const int64_t x_bytes = ElementsToBytes(x.dtype, 1);
  const ExpertScratch at(tokens, hidden, ffn, top_k, local, x_bytes);
  auto* base = static_cast<std::byte*>(
      Scratch(expert_scratch_, expert_scratch_bytes_, at.size, "the experts' memory"));
  if (base == nullptr) return;
  auto* offsets = At<int32_t>(base, 0);
  auto* rows = At<int32_t>(base, at.rows);
  auto* positions = At<int32_t>(base, at.positions);
  auto* tiles = At<int32_t>(base, at.tiles);
  auto* chunk_tiles = At<int32_t>(base, at.chunk_tiles);
  Record(kc::LaunchMoePlan({ids.As<int32_t>(), offsets, rows, positions, tiles, chunk_tiles,
                            tokens * top_k, top_k, experts.expert_begin, local},
                           stream_));
  // Up to kMaxMoeLaunchExperts experts a launch (their weights' addresses are its arguments).
  for (int64_t first = 0; first < local && error_.ok(); first += kc::kMaxMoeLaunchExperts) {
    const int64_t n = std::min<int64_t>(local - first, kc::kMaxMoeLaunchExperts);
    auto product = [&](const void* a, void* out, int64_t cols, int64_t k) {
      kc::MoeMatMulParams p;
      p.a = a;
      p.offsets = offsets;
      p.tiles = tiles;
      p.chunk_tiles = chunk_tiles;
      p.out = out;
      p.num_slots = tokens * top_k;
      p.first = first;
      p.num_experts = n;
      p.n = cols;
      p.k = k;
      p.a_elem = *elem;
      return p;
    };
    kc::MoeMatMulParams gated = product(x.data, base + at.gated, ffn, hidden);
    gated.a_rows = rows;  // x by token
    gated.gated = true;
    gated.act = ActOf(experts.activation);
    gated.out_elem = *elem;
    kc::MoeMatMulParams down = product(base + at.gated, base + at.out, hidden, ffn);
    down.out_elem = kc::Elem::kF32;
    for (int64_t e = 0; e < n; ++e) {
      gated.w[e] = experts.gate[first + e].view.data;
      gated.up[e] = experts.up[first + e].view.data;
      down.w[e] = experts.down[first + e].view.data;
    }
    Record(kc::LaunchMoeMatMul(gated, stream_));
    Record(kc::LaunchMoeMatMul(down, stream_));
  }
  Record(kc::LaunchMoeCombine({At<float>(base, at.out), ids.As<int32_t>(), weights.As<float>(),
                               positions, y.data, tokens, top_k, hidden, *elem},
                              stream_));
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
    void* converted = Scratch(x_bf16_, x_bf16_bytes_, m * k * 2, "the f32 matmul input");
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
  const bool fp8 = cache.k.dtype == DType::kF8E4M3;
  if (!Check(elem && (cache.k.dtype == DType::kBF16 || fp8) &&
                 (!has_v || cache.v.dtype == cache.k.dtype) &&
                 (!fp8 || (!cache.k_scale.empty() && (!has_v || !cache.v_scale.empty()))) &&
                 k.NumElements() == plan.num_tokens * cache.num_kv_heads * cache.head_dim &&
                 (!has_v || (v.dtype == k.dtype &&
                             v.NumElements() == plan.num_tokens * cache.num_kv_heads * v_dim)),
             "WriteKv: k/v of [num_tokens, kv_heads, head_dim] and a bf16 cache, or an f8_e4m3 "
             "one with its scales")) {
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
  if (fp8) {
    p.fp8 = true;
    p.k_scale = cache.k_scale.As<float>();
    p.v_scale = has_v ? cache.v_scale.As<float>() : nullptr;
  }
  Record(kc::LaunchWriteKv(p, stream_));
}

void CudaBackend::Attention(const StepPlan& plan, const Tensor& q, const KvLayer& cache,
                            const AttentionParams& params, const Tensor& out) {
  // V is stored, or (multi-head latent attention) read from the first dv values of K's rows.
  const int64_t dv = params.v_head_dim > 0 ? params.v_head_dim : params.head_dim;
  const bool v_in_k = cache.v.empty();
  const bool fp8 = cache.k.dtype == DType::kF8E4M3;
  if (!Check(q.dtype == DType::kBF16 && out.dtype == DType::kBF16 &&
                 (cache.k.dtype == DType::kBF16 || fp8) &&
                 (v_in_k || cache.v.dtype == cache.k.dtype) &&
                 (!fp8 || (!cache.k_scale.empty() && (v_in_k || !cache.v_scale.empty()))) &&
                 q.NumElements() == plan.num_tokens * params.num_heads * params.head_dim &&
                 out.NumElements() == plan.num_tokens * params.num_heads * dv &&
                 cache.head_dim == params.head_dim && cache.num_kv_heads == params.num_kv_heads &&
                 (cache.v_head_dim > 0 ? cache.v_head_dim : cache.head_dim) == dv &&
                 dv <= params.head_dim,
             "Attention: bf16 q and out, a bf16 or f8_e4m3 cache (with its scales), of matching "
             "shapes")) {
    return;
  }
  kc::PagedAttentionArgs a;
  a.q = q.data;
  a.k_cache = cache.k.data;
  a.v_cache = v_in_k ? nullptr : cache.v.data;
  a.v_head_dim = dv;
  a.v_in_k = v_in_k;
  if (fp8) {
    a.fp8_kv = true;
    a.k_scale = cache.k_scale.As<float>();
    a.v_scale = v_in_k ? nullptr : cache.v_scale.As<float>();
  }
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
  a.max_tokens = plan.num_tokens;  // bounds every launch's share of the step
  a.scale = params.scale;
  a.softcap = params.softcap;
  a.sliding_window = params.sliding_window;
  a.hopper = hopper_prefill_;
  a.num_blocks = cache.num_blocks;
  // The decode partials: sized at load for as many sequences as the step has logit rows; a
  // step with more runs its sequences in several launches (a sequence's result does not depend
  // on which launch it is in). Without a reservation the partials are sized to the step.
  const int64_t per_seq = kc::AttentionWorkspaceBytes(1, params.num_heads, params.head_dim,
                                                      plan.max_context_len, dv, v_in_k);
  int64_t per_launch = std::max<int64_t>(plan.num_seqs, 1);
  if (per_seq > 0) {
    const int64_t need = per_seq * (reserved_ ? std::min(per_launch, attention_seqs_) : per_launch);
    a.workspace = Scratch(attention_ws_, attention_ws_bytes_, need, "attention");
    if (a.workspace == nullptr) return;
    per_launch = attention_ws_bytes_ / per_seq;
  }
  per_launch = std::min<int64_t>(per_launch, kMaxSeqsPerAttentionLaunch);
  int64_t first = 0;
  do {
    kc::PagedAttentionArgs part = a;
    part.num_seqs = std::min(per_launch, plan.num_seqs - first);
    part.block_tables = plan.block_tables + first * a.max_blocks_per_seq;
    part.query_start = plan.query_start + first;
    part.context_lens = plan.context_lens + first;
    part.workspace_bytes = per_seq * part.num_seqs;
    Record(kc::LaunchPagedAttention(part, kc::AttentionDType::kBf16, stream_));
    first += per_launch;
  } while (first < plan.num_seqs && error_.ok());
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

absl::Status CheckHopperPrefill(int index) {
  const int sm = kc::ComputeCapability(index);
  const std::string device = absl::StrCat("device 'cuda:", index, "' has compute capability ",
                                          sm / 10, ".", sm % 10);
  if (sm != 90) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--hopper-prefill: ", device,
        "; the Hopper prefill kernel runs on 9.0 only (drop the flag for the portable one)"));
  }
  if (!kc::HopperPrefillBuilt()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--hopper-prefill: ", device, ", but this build has no sm_90a code "
        "(CMAKE_CUDA_ARCHITECTURES without 90a); drop the flag for the portable kernel"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(const DeviceSpec& spec) {
  STRATA_ASSIGN_OR_RETURN(DeviceInfo info, CudaDeviceInfo(spec.index));
  const DType kv_dtype = spec.kv_dtype.value_or(DType::kBF16);
  if (spec.hopper_prefill) STRATA_RETURN_IF_ERROR(CheckHopperPrefill(info.index));
  if (kv_dtype != DType::kBF16 && kv_dtype != DType::kF8E4M3) {
    return absl::InvalidArgumentError(absl::StrCat("cuda backend: a KV cache of ",
                                                   DTypeName(kv_dtype), "; bf16 or f8_e4m3"));
  }
  info.kv_dtype = kv_dtype;
  cudaStream_t stream = nullptr;
  if (cudaError_t err = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
      err != cudaSuccess) {
    return CudaError(err, "stream");
  }
  absl::StatusOr<std::unique_ptr<CudaMatMul>> matmul =
      CudaMatMul::Create(kMatMulWorkspace, spec.per_shape_matmul);
  if (!matmul.ok()) {
    cudaStreamDestroy(stream);
    return matmul.status();
  }
  return std::unique_ptr<Backend>(new CudaBackend(std::move(info), stream, *std::move(matmul),
                                                  spec.eager, spec.hopper_prefill));
}

}  // namespace strata

// Backend: the seam between model code and a device. A backend owns typed memory (weights,
// activations, the paged KV cache) and runs the decoder's ops on it; model code
// (worker/model) is written once against this interface and never asks which device it is on.
// `cpu` (cpu_backend.h) runs kernels/cpu on host memory; a `cuda` backend implements the same
// interface on a GPU stream.
//
// Execution model (ggml-backend's, FlashInfer's plan/run split):
//  * Ops are stream-ordered: they are queued in call order and may run asynchronously. They
//    return nothing; a failure is recorded and returned by the next Sync(), so every step ends
//    with one Sync() whose Status says whether the step's ops succeeded. After a failure the
//    remaining ops of the step may be skipped.
//  * Step metadata (tokens, positions, KV slots, block tables, query and context lengths,
//    logit rows) reaches the backend once per step: PlanStep() copies a StepBatch into the
//    backend's memory and returns a StepPlan that the ops of that step read. A plan is valid
//    until the next PlanStep().
//  * Sampling is an op of the last stage: Sample() turns logits into token ids (and the
//    logprobs a request asked for) on the device; only those leave it.
//  * Decode steps may be replayed from a recording (CUDA graphs): a backend that records them
//    pads a step whose sequences each decode one token to the next of its GraphBatches() sizes
//    in PlanStep(), and the model queues that step's ops through RunGraph(), which records them
//    the first time for that size and replays the recording after that.
//
// Contracts shared by every op: tensors are in this backend's memory and contiguous unless
// stated; activations are in device().activation_dtype (f32 on the CPU); weights are whatever
// LoadWeight() made of them; shapes are checked by the caller (model code builds them from the
// config), and an op given shapes that do not fit fails the step.
//
// Not thread-safe: one thread drives a backend.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/device.h"
#include "common/rope_layout.h"
#include "common/sampling_params.h"
#include "common/tensor.h"
#include "worker/backend/step_batch.h"
#include "worker/backend/tensor.h"
#include "worker/sampling/token_history.h"

namespace strata {

// A step's metadata in backend memory (every pointer is backend memory).
struct StepPlan {
  int64_t num_tokens = 0;
  int64_t num_seqs = 0;
  int64_t max_blocks_per_seq = 0;
  int64_t num_logit_rows = 0;
  int64_t max_query_len = 0;    // longest query range of a sequence in this step
  int64_t max_context_len = 0;  // longest context of a sequence after this step
  const int32_t* tokens = nullptr;        // [num_tokens]
  const int32_t* positions = nullptr;     // [num_tokens]
  const int32_t* slot_mapping = nullptr;  // [num_tokens] block * block_size + offset
  const int32_t* token_seq = nullptr;     // [num_tokens] the sequence each token belongs to
  const int32_t* query_start = nullptr;   // [num_seqs + 1]
  const int32_t* context_lens = nullptr;  // [num_seqs]
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq], -1 padded
  const int32_t* logit_rows = nullptr;    // [num_logit_rows]
  // A decode step padded for a recorded graph (RunGraph): graph_batch > 0 sequences of one
  // token each (num_tokens = num_seqs = num_logit_rows = graph_batch), the batch's own being the
  // first batch_seqs; the padding stores no K/V and its outputs are to be ignored. Its
  // max_blocks_per_seq and max_context_len are the reserved maxima, not the batch's, so that
  // every step of one size launches the same grids.
  int64_t graph_batch = 0;
  int64_t batch_seqs = 0;
};

// An attention layer's K/V layout: K's head dim, V's (0: K's), and whether V is stored apart
// or read from the first v_head_dim values of each K row (KvLayer).
struct AttentionShape {
  int64_t head_dim = 0;
  int64_t v_head_dim = 0;
  bool v_in_k = false;
  bool operator==(const AttentionShape&) const = default;
};

// The largest step a backend will run, known at load (the runner's options and its model):
// what sizes the memory a step needs beside the model's workspace (step metadata, attention
// partials, sampling) once.
struct StepLimits {
  int64_t max_tokens = 0;
  int64_t max_logit_rows = 0;      // rows of logits, and rows sampled
  int64_t max_blocks_per_seq = 0;  // the block table of the longest context
  int64_t block_size = 0;
  int64_t vocab = 0;               // columns of the logits sampled (0: no sampling here)
  int64_t num_heads = 0;           // attention query heads on this rank
  std::vector<AttentionShape> attention;  // the layers' K/V layouts, each once
  // Mixture of experts: the hidden size, a routed expert's FFN width (at most; 0: no MoE
  // layers), the routed experts (a rank holds at most these) and the experts per token.
  int64_t hidden = 0;
  int64_t expert_ffn = 0;
  int64_t num_experts = 0;
  int64_t top_k = 0;
  // Decode steps of up to this many sequences may be padded and replayed as recorded graphs
  // (0: never). The model sets it only where a step's ops never wait for the host: collectives
  // (if tensor-parallel) queued on the backend's stream.
  int64_t max_graph_seqs = 0;
};

// The counts and maxima of `batch`'s plan (its pointers left null), and in `token_seq`
// [num_tokens] the sequence each token belongs to: what every backend's PlanStep starts from.
StepPlan PlanShape(const StepBatch& batch, std::vector<int32_t>& token_seq);

// Every sequence of `batch` decodes one token whose logits the step returns, in order: a step
// a recorded graph can replay once padded.
bool IsDecodeStep(const StepBatch& batch);

// Where a padded decode step's int32 metadata lies (offsets in values) when every padded step
// shares one layout, that of the largest, `capacity` sequences with `blocks` block table
// columns: so every step of one size has the same device pointers, which its recording holds.
// The lists first (block_tables is also their length), then the block tables.
struct PaddedDecodeLayout {
  PaddedDecodeLayout(int64_t max_seqs, int64_t columns);
  int64_t capacity = 0, blocks = 0;
  int64_t tokens = 0, positions = 0, slots = 0, token_seq = 0;
  int64_t query_start = 0;  // capacity + 1 values
  int64_t context_lens = 0, logit_rows = 0;
  int64_t block_tables = 0;  // [capacity, blocks]
  int64_t size = 0;
};

// Packs the decode step `batch` (IsDecodeStep; at most `seqs` <= layout.capacity sequences,
// block tables of at most layout.blocks columns) padded to `seqs` sequences into `out`
// [layout.size]. The padding decodes token 0 at position 0, stores no K/V (slot -1) and reads
// one key, of block 0. Of each block table row only the batch's max_blocks_per_seq columns are
// written (at least one); the values past `seqs` are left as they were.
void PackPaddedDecode(const StepBatch& batch, int64_t seqs, const PaddedDecodeLayout& layout,
                      int32_t* out);

enum class NormKind : uint8_t { kRms, kLayer };

// y = norm(x) * w (+ b).
//   RMSNorm:   x / sqrt(mean(x^2) + eps) * (unit_offset ? 1 + w : w)
//   LayerNorm: (x - mean(x)) / sqrt(var(x) + eps) * w + b
struct NormParams {
  NormKind kind = NormKind::kRms;
  float eps = 1e-6f;
  const Weight* weight = nullptr;  // [dim] f32
  const Weight* bias = nullptr;    // [dim] f32, LayerNorm only (optional)
  bool unit_offset = false;        // RMSNorm scaled by (1 + w) (Gemma's checkpoints)
};

// Rotary position embedding of the first `rotary_dim` dims of every head. The angle of pair i
// at position p is p * inv_freq[i] (f32); cos and sin are multiplied by `mscale`. A sequence
// whose context (after this step) exceeds `long_threshold` > 0 uses the `long_*` table
// instead (LongRoPE: chosen per sequence, so other sequences never change one's result).
struct RopeParams {
  const Weight* inv_freq = nullptr;  // [rotary_dim / 2] f32
  int64_t rotary_dim = 0;
  RopeLayout layout = RopeLayout::kHalfSplit;
  float mscale = 1.0f;
  const Weight* long_inv_freq = nullptr;  // [rotary_dim / 2] f32
  int64_t long_threshold = 0;
  float long_mscale = 1.0f;
};

enum class Activation : uint8_t {
  kSilu,      // x * sigmoid(x)
  kGeluTanh,  // GELU, tanh approximation (gelu_pytorch_tanh, gelu_new)
  kGeluErf,   // GELU, exact (erf)
};

// One layer of the paged KV cache. K: [num_blocks, block_size, num_kv_heads, head_dim] of the
// backend's KV dtype; V likewise with v_head_dim. An empty `v` means V is not stored: each
// token's V is the first v_head_dim values of its K row (multi-head latent attention). An
// f8_e4m3 cache has a scale per (slot, KV head) row, [num_blocks, block_size, num_kv_heads] f32
// each for K and V (a value is its code times its row's scale); other caches leave them empty.
struct KvLayer {
  Tensor k;
  Tensor v;
  Tensor k_scale;
  Tensor v_scale;
  int64_t num_blocks = 0;
  int64_t block_size = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t v_head_dim = 0;
};

// Causal attention of every query token over its sequence's context in the paged cache (which
// already holds the step's own K/V). Query head h reads KV head h / (num_heads / num_kv_heads).
struct AttentionParams {
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;        // of q and k
  int64_t v_head_dim = 0;      // of v and the output (0: head_dim)
  float scale = 1.0f;          // on q·k
  float softcap = 0.0f;        // > 0: scores = softcap * tanh(scores / softcap)
  int64_t sliding_window = 0;  // > 0: a query at position p sees keys in (p - window, p]
};

// Mixture-of-experts routing of each token to top_k experts (router logits -> ids, weights).
struct MoeRouting {
  enum class Scoring : uint8_t { kSoftmax, kSigmoid };
  int64_t num_experts = 0;
  int64_t top_k = 0;
  Scoring scoring = Scoring::kSoftmax;
  bool renormalize = false;  // weights of the chosen experts rescaled to sum to 1
  // Grouped routing (DeepSeek): experts form num_groups groups; a token picks the topk_groups
  // groups with the best expert score, then its top_k experts inside them.
  int64_t num_groups = 1;
  int64_t topk_groups = 1;
  float routed_scale = 1.0f;               // multiplies the final weights
  const Weight* correction_bias = nullptr;  // [num_experts]: added for choosing only
};

// The experts one rank holds: local expert i is global expert expert_begin + i. Each expert's
// weights are the rank's slice (its share of the FFN width under tensor-parallel experts).
struct ExpertWeights {
  int64_t expert_begin = 0;
  std::vector<Weight> gate;  // [num_local][ffn, hidden]
  std::vector<Weight> up;    // [num_local][ffn, hidden]
  std::vector<Weight> down;  // [num_local][hidden, ffn]
  Activation activation = Activation::kSilu;
};

// One row of logits to sample from.
struct SamplingRow {
  const SamplingParams* params = nullptr;
  const TokenHistory* history = nullptr;  // for the penalties (may be null without them)
  uint32_t position = 0;                  // the sampled token's position (Philox key)
};

struct SampledToken {
  int32_t token = -1;
  std::optional<TokenLogprobs> logprobs;  // when params->logprobs >= 0
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual const DeviceInfo& device() const = 0;

  // --- Memory (synchronous; load time) ---

  // Makes a weight from `host` (a view of host memory, e.g. an mmap'ed file) converted to
  // `dtype`. Zero-copy where the device can read the bytes in place (the CPU, dtype
  // unchanged); `host` must then outlive the weight.
  virtual absl::StatusOr<Weight> LoadWeight(const TensorView& host, DType dtype) = 0;
  // Copies a small host table (RoPE frequencies, ...) into a weight of its own.
  virtual absl::StatusOr<Weight> UploadWeight(DType dtype, Shape shape, const void* host) = 0;
  // Zero-initialised memory for a tensor of `shape`.
  virtual absl::StatusOr<Buffer> Allocate(DType dtype, Shape shape) = 0;
  // Sizes the backend's own step memory (metadata, attention partials, sampling) for steps
  // within `limits`, so that they allocate nothing. A step beyond them still runs: the
  // backend grows what it must then, once, and keeps it.
  virtual absl::Status Reserve(const StepLimits& limits) = 0;

  // --- Stream-ordered copies and completion ---

  virtual void CopyFromHost(const void* host, const Tensor& dst) = 0;
  // `host` holds the data after the next Sync().
  virtual void CopyToHost(const Tensor& src, void* host) = 0;
  // Waits for every queued op; returns the first error since the previous Sync().
  virtual absl::Status Sync() = 0;

  // The native handle of the queue the ops run on (a cudaStream_t), for a communicator to
  // enqueue its collectives in order with them; nullptr where ops run as they are called.
  virtual void* stream() const { return nullptr; }
  // Others' work queued on stream() (collectives) can stall on a dead peer; `wait` waits for
  // the queue within its own bound and says why not (a communicator's Synchronize). Sync()
  // calls it first, so no wait of the backend's hangs. Empty: none.
  virtual void SetStreamWait(std::function<absl::Status()> wait) { (void)wait; }

  // --- The step plan ---

  // Copies `batch`'s metadata into backend memory (validated by the caller).
  virtual absl::StatusOr<const StepPlan*> PlanStep(const StepBatch& batch) = 0;

  // --- Recorded decode steps ---

  // The sizes PlanStep pads decode steps to (StepPlan::graph_batch), ascending; empty where
  // the backend records no graphs (the CPU; Reserve's max_graph_seqs of 0).
  virtual std::vector<int64_t> GraphBatches() const { return {}; }
  // Queues the ops of a step planned with graph_batch `batch`, which `queue` queues. The first
  // time for `batch` the backend runs them as `queue` queues them, then calls `queue` again to
  // record them without running; later steps of that size replay the recording, and `queue` is
  // not called. So `queue` must queue the same ops with the same arguments for every step of
  // one size (the plan's device pointers and counts are the same), and nothing in it may wait
  // for the device (no Sync, no host copies). A backend records for the one runner whose
  // limits it reserved (Reserve). A recording that fails does not fail the step (which ran):
  // the backend warns and runs every later step op by op, still padded (so a step's shapes,
  // and a tensor-parallel group's collectives, do not change). Backends without graphs just
  // call `queue`.
  virtual absl::Status RunGraph(int64_t batch, absl::FunctionRef<absl::Status()> queue) {
    (void)batch;
    return queue();
  }

  // --- Ops ---

  // y[m, n] = x[m, k] · w[n, k]^T (+ bias[n]).
  virtual void MatMul(const Tensor& x, const Weight& w, const Weight* bias, const Tensor& y) = 0;
  // ys[i] = x · ws[i]^T (+ biases[i]) for weights that share x and dtype (q/k/v, gate/up):
  // one pass over x (one activation quantization for quantized weights). biases may be empty
  // or hold nullptrs.
  virtual void MatMulGroup(const Tensor& x, absl::Span<const Weight* const> ws,
                           absl::Span<const Weight* const> biases,
                           absl::Span<const Tensor> ys) = 0;
  // out[i, :] = table[tokens[i] - vocab_begin, :] * scale for the plan's tokens inside this
  // slice of the vocabulary, zeros for the others (vocab-parallel embedding).
  //   table: [vocab_rows, dim]; out: [num_tokens, dim]
  virtual void Embedding(const StepPlan& plan, const Weight& table, int64_t vocab_begin,
                         float scale, const Tensor& out) = 0;
  // y[r, :] = norm(x[r, :]) for every row.   x, y: [rows, dim]; y may be x.
  virtual void Norm(const Tensor& x, const NormParams& params, const Tensor& y) = 0;
  // residual += delta, then y = norm(residual) (the fused residual add of pre-norm blocks).
  virtual void AddNorm(const Tensor& residual, const Tensor& delta, const NormParams& params,
                       const Tensor& y) = 0;
  // Rotates x in place at the plan's positions.   x: [num_tokens, heads, head_dim]
  virtual void Rope(const StepPlan& plan, const Tensor& x, const RopeParams& params) = 0;
  // out = act(gate) * up.   All [rows, n]; out may be gate.
  virtual void GatedActivation(const Tensor& gate, const Tensor& up, Activation act,
                               const Tensor& out) = 0;
  // x = act(x).
  virtual void Activate(const Tensor& x, Activation act) = 0;
  // x += y (same shape).
  virtual void Add(const Tensor& x, const Tensor& y) = 0;
  // dst = src converted between floating-point dtypes (same element count; rounded to
  // nearest even when narrowing).
  virtual void Convert(const Tensor& src, const Tensor& dst) = 0;
  // x = cap * tanh(x / cap).
  virtual void Softcap(const Tensor& x, float cap) = 0;
  // dst[r, dst_col : dst_col + width] = src[r, src_col : src_col + width] for every row
  // (same row count; assembles and splits tensor-parallel slices).
  virtual void CopyColumns(const Tensor& src, int64_t src_col, const Tensor& dst,
                           int64_t dst_col, int64_t width) = 0;
  // dst[i, :] = src[plan.logit_rows[i], :].   src: [num_tokens, dim]; dst: [num_logit_rows, dim]
  virtual void GatherLogitRows(const StepPlan& plan, const Tensor& src, const Tensor& dst) = 0;
  // Stores token t's K/V at cache slot plan.slot_mapping[t].
  //   k: [num_tokens, num_kv_heads, head_dim]; v: [num_tokens, num_kv_heads, v_head_dim]
  //   (v is ignored when the layer stores no V)
  virtual void WriteKv(const StepPlan& plan, const Tensor& k, const Tensor& v,
                       const KvLayer& cache) = 0;
  //   q: [num_tokens, num_heads, head_dim]; out: [num_tokens, num_heads, v_head_dim]
  virtual void Attention(const StepPlan& plan, const Tensor& q, const KvLayer& cache,
                         const AttentionParams& params, const Tensor& out) = 0;
  //   logits: [tokens, num_experts] f32 -> ids: [tokens, top_k] i32, weights: [tokens, top_k] f32
  virtual void MoeRoute(const Tensor& logits, const MoeRouting& routing, const Tensor& ids,
                        const Tensor& weights) = 0;
  // y[t] = sum_j weights[t, j] * expert_{ids[t, j]}(x[t]) over the experts this rank holds
  // (others contribute nothing), where expert(x) = down(act(gate x) * up x). Tokens are
  // grouped by expert so each expert's weights are read once per step (the GPU: once per 64 of
  // its tokens).
  //   x, y: [tokens, hidden]; ids, weights: [tokens, top_k]
  virtual void MoeFfn(const Tensor& x, const Tensor& ids, const Tensor& weights,
                      const ExpertWeights& experts, const Tensor& y) = 0;

  // --- Sampling (synchronizes) ---

  // Samples rows[i] from logits row i: logit bias and penalties, then temperature, top-k,
  // top-p, min-p, with Philox keyed by (seed, stream, position); logprobs from the raw row.
  // A row with a NaN or +infinity (or nothing finite) gets kNonFiniteLogits (common/step.h).
  //   logits: [rows.size(), vocab] f32
  virtual absl::Status Sample(const Tensor& logits, absl::Span<const SamplingRow> rows,
                              std::vector<SampledToken>& out) = 0;
};

}  // namespace strata

// Llama-family decoder (Llama 2/3, Mistral with its sliding window): pre-norm blocks
// of RMSNorm -> GQA self-attention with RoPE -> residual, RMSNorm -> SwiGLU MLP -> residual;
// final RMSNorm and lm_head (tied to the embedding when the checkpoint says so).
//
// Hugging Face checkpoints rotate half-split pairs; GGUF checkpoints have q/k rows permuted by
// llama.cpp's converter and rotate interleaved pairs. Llama 3.1 frequency scaling comes from
// config.json (HF) or the `rope_freqs.weight` tensor (GGUF).
//
// Tensor parallelism (Megatron-style, shards from tp_shard.h): q/k/v and gate/up are
// column-parallel (this rank's rows of the weight), o_proj and down_proj row-parallel (its
// columns) and end in one all-reduce each per layer; the embedding and lm_head are
// vocab-parallel. Every slice is a zero-copy view of the mapped file unless converted.
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/substitute.h"
#include "common/logging.h"
#include "common/status.h"
#include "worker/comm/communicator.h"
#include "worker/kv_cache/kv_cache.h"
#include "worker/model/model_registry.h"
#include "worker/model/tp_shard.h"

namespace strata {
namespace {

namespace k = kernels::cpu;

// One logical weight under both naming schemes; `$0` stands for the layer index.
struct WeightName {
  std::string_view hf;
  std::string_view gguf;
};
constexpr WeightName kEmbed{"model.embed_tokens.weight", "token_embd.weight"};
constexpr WeightName kFinalNorm{"model.norm.weight", "output_norm.weight"};
constexpr WeightName kLmHead{"lm_head.weight", "output.weight"};
constexpr WeightName kAttnNorm{"model.layers.$0.input_layernorm.weight", "blk.$0.attn_norm.weight"};
constexpr WeightName kWq{"model.layers.$0.self_attn.q_proj.weight", "blk.$0.attn_q.weight"};
constexpr WeightName kWk{"model.layers.$0.self_attn.k_proj.weight", "blk.$0.attn_k.weight"};
constexpr WeightName kWv{"model.layers.$0.self_attn.v_proj.weight", "blk.$0.attn_v.weight"};
constexpr WeightName kWo{"model.layers.$0.self_attn.o_proj.weight", "blk.$0.attn_output.weight"};
constexpr WeightName kFfnNorm{"model.layers.$0.post_attention_layernorm.weight", "blk.$0.ffn_norm.weight"};
constexpr WeightName kWGate{"model.layers.$0.mlp.gate_proj.weight", "blk.$0.ffn_gate.weight"};
constexpr WeightName kWUp{"model.layers.$0.mlp.up_proj.weight", "blk.$0.ffn_up.weight"};
constexpr WeightName kWDown{"model.layers.$0.mlp.down_proj.weight", "blk.$0.ffn_down.weight"};
constexpr std::string_view kGgufRopeFreqs = "rope_freqs.weight";

// Which part of a weight this rank loads: rows [begin, end), columns [begin, end), or all.
struct Slice {
  enum Kind { kAll, kRows, kCols } kind = kAll;
  int64_t begin = 0, end = 0;
};

// This rank's shard of one layer (heads and intermediate size local).
struct LayerWeights {
  Weight attn_norm, wq, wk, wv, wo;  // wq: [heads * head_dim, hidden], wo: [hidden, heads * head_dim]
  Weight ffn_norm, w_gate, w_up, w_down;  // gate/up: [intermediate, hidden], down: [hidden, intermediate]
};

// Per-step activations, grown on demand and reused.
struct Scratch {
  std::unique_ptr<Buffer> x, h, q, k, v, attn, gate, up, logits;
  std::unique_ptr<Buffer> embed;     // TP: [1 + tokens, hidden], row 0 stays zero
  std::unique_ptr<Buffer> gathered;  // TP: [tp, logit_rows * vocab_stride]
  int64_t tokens = 0;
  int64_t logit_rows = 0;
};

class LlamaModel : public ModelRunner {
 public:
  explicit LlamaModel(const ModelContext& context)
      : context_(context), config_(context_.config), backend_(*context_.backend) {}

  absl::Status Init();

  const ModelConfig& config() const override { return config_; }
  int64_t layer_begin() const override { return context_.options.layer_begin; }
  int64_t layer_end() const override { return context_.options.layer_end; }
  int64_t kv_blocks() const override { return kv_->shape().num_blocks; }
  int64_t kv_block_size() const override { return kv_->shape().block_size; }
  int64_t weight_bytes() const override { return weight_bytes_; }
  int64_t decode_weight_bytes() const override {
    const bool embed_streamed = is_last_stage() && config_.tie_word_embeddings;
    return weight_bytes_ - (embed_.view.data != nullptr && !embed_streamed ? EmbedBytes() : 0);
  }

  absl::Status Forward(const StepBatch& batch, absl::Span<const float> hidden_in,
                       std::vector<float>& out) override;

 private:
  // Loads `slice` of one tensor after checking the whole tensor's shape; `matrix` weights may
  // be converted to the requested dtype, vectors are always f32.
  absl::StatusOr<Weight> Load(const WeightName& name, int64_t layer, const Shape& shape,
                              bool matrix, Slice slice = {});
  absl::Status InitTp();
  absl::Status InitRope();
  int64_t EmbedBytes() const { return embed_.view.Rows() * embed_.view.RowBytes(); }
  absl::Status EnsureScratch(int64_t tokens, int64_t logit_rows);
  // x: [tokens, hidden] = the embeddings of the step's tokens (summed over vocab slices).
  absl::Status Embed(const StepBatch& batch, float* x);
  absl::Status RunLayer(int64_t layer, const StepBatch& batch, const AttentionBatch& attn_batch);
  // h: [rows, hidden] normed hidden states -> out: [rows, vocab] full logits on the host.
  absl::Status LmHead(const float* h, int64_t rows, std::vector<float>& out);
  // Sums `data` [n] over the TP group (a no-op without one).
  absl::Status AllReduce(float* data, int64_t n) {
    return tp_.size == 1 ? absl::OkStatus() : context_.options.comm->AllReduceSum(data, n);
  }

  ModelContext context_;
  const ModelConfig& config_;
  Backend& backend_;
  TpShard tp_;
  Weight embed_, final_norm_, lm_head_;
  std::vector<LayerWeights> layers_;
  std::vector<float> inv_freq_;  // [head_dim / 2], host
  std::unique_ptr<KvCache> kv_;
  Scratch scratch_;
  std::vector<float> gathered_host_;  // TP: host copy of scratch_.gathered
  int64_t weight_bytes_ = 0;
};

absl::StatusOr<Weight> LlamaModel::Load(const WeightName& name, int64_t layer, const Shape& shape,
                                        bool matrix, Slice slice) {
  const std::string_view pattern = context_.gguf_names ? name.gguf : name.hf;
  const std::string tensor =
      absl::Substitute(absl::string_view(pattern.data(), pattern.size()), layer);
  const WeightSource& source = *context_.weights;
  STRATA_ASSIGN_OR_RETURN(TensorView view, source.Get(tensor));
  if (view.shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat(source.path(), ": tensor '", tensor,
                                                    "' has shape ", ShapeToString(view.shape),
                                                    ", expected ", ShapeToString(shape)));
  }
  if (slice.kind != Slice::kAll) {
    auto part = slice.kind == Slice::kRows ? view.SliceRows(slice.begin, slice.end)
                                           : view.SliceCols(slice.begin, slice.end);
    if (!part.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          source.path(), ": tensor '", tensor, "' cannot be split for tensor parallelism ",
          tp_.size, ": ", part.status().message()));
    }
    view = *part;
  }
  source.Prefetch(view);  // only this rank's bytes: the mapping reads nothing ahead
  DType dtype = DType::kF32;
  if (matrix) {
    dtype = context_.options.weight_dtype.value_or(view.dtype);
    if (!IsBlockAligned(dtype, view.Cols())) dtype = DType::kF16;
  }
  auto weight = backend_.LoadWeight(view, dtype);
  if (!weight.ok()) {
    return absl::Status(weight.status().code(), absl::StrCat(source.path(), ": tensor '", tensor,
                                                             "': ", weight.status().message()));
  }
  weight_bytes_ += weight->view.Rows() * weight->view.RowBytes();
  if (context_.options.on_progress) context_.options.on_progress(weight_bytes_);
  return weight;
}

absl::Status LlamaModel::Init() {
  const ModelConfig& c = config_;
  if (c.attention_bias || c.mlp_bias || c.IsMoe() || c.quant.method != QuantMethod::kNone) {
    return absl::UnimplementedError(absl::StrCat(
        context_.weights->path(), ": ", c.architecture,
        " with attention/MLP biases, experts or a quantization_config is not supported yet"));
  }
  STRATA_RETURN_IF_ERROR(InitTp());
  const int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  const int64_t hidden = c.hidden_size, ffn = c.intermediate_size, hd = c.head_dim;
  // This rank's slices (tp_shard.h); with tp_size 1 they cover everything.
  const Slice q_rows{Slice::kRows, tp_.q_head_begin * hd, (tp_.q_head_begin + tp_.num_heads) * hd};
  const Slice q_cols{Slice::kCols, q_rows.begin, q_rows.end};
  const Slice kv_rows{Slice::kRows, tp_.kv_head_begin * hd,
                      (tp_.kv_head_begin + tp_.num_kv_heads) * hd};
  const Slice ffn_rows{Slice::kRows, tp_.ffn_begin, tp_.ffn_begin + tp_.ffn_size};
  const Slice ffn_cols{Slice::kCols, ffn_rows.begin, ffn_rows.end};
  const Slice vocab_rows{Slice::kRows, tp_.vocab_begin, tp_.vocab_begin + tp_.vocab_size};
  const ModelLoadOptions& o = context_.options;
  if (is_first_stage() || (is_last_stage() && c.tie_word_embeddings)) {
    STRATA_ASSIGN_OR_RETURN(embed_, Load(kEmbed, 0, {c.vocab_size, hidden}, true, vocab_rows));
  }
  if (is_last_stage()) {
    STRATA_ASSIGN_OR_RETURN(final_norm_, Load(kFinalNorm, 0, {hidden}, false));
    if (c.tie_word_embeddings) {
      lm_head_ = embed_;
    } else {
      STRATA_ASSIGN_OR_RETURN(lm_head_,
                              Load(kLmHead, 0, {c.vocab_size, hidden}, true, vocab_rows));
    }
  }
  for (int64_t l = o.layer_begin; l < o.layer_end; ++l) {
    LayerWeights w;
    STRATA_ASSIGN_OR_RETURN(w.attn_norm, Load(kAttnNorm, l, {hidden}, false));
    STRATA_ASSIGN_OR_RETURN(w.wq, Load(kWq, l, {q_dim, hidden}, true, q_rows));
    STRATA_ASSIGN_OR_RETURN(w.wk, Load(kWk, l, {kv_dim, hidden}, true, kv_rows));
    STRATA_ASSIGN_OR_RETURN(w.wv, Load(kWv, l, {kv_dim, hidden}, true, kv_rows));
    STRATA_ASSIGN_OR_RETURN(w.wo, Load(kWo, l, {hidden, q_dim}, true, q_cols));
    STRATA_ASSIGN_OR_RETURN(w.ffn_norm, Load(kFfnNorm, l, {hidden}, false));
    STRATA_ASSIGN_OR_RETURN(w.w_gate, Load(kWGate, l, {ffn, hidden}, true, ffn_rows));
    STRATA_ASSIGN_OR_RETURN(w.w_up, Load(kWUp, l, {ffn, hidden}, true, ffn_rows));
    STRATA_ASSIGN_OR_RETURN(w.w_down, Load(kWDown, l, {hidden, ffn}, true, ffn_cols));
    layers_.push_back(std::move(w));
  }
  STRATA_RETURN_IF_ERROR(InitRope());

  KvCacheShape shape;
  shape.num_layers = o.layer_end - o.layer_begin;
  shape.num_blocks = o.kv_blocks;
  shape.block_size = o.kv_block_size;
  shape.num_kv_heads = tp_.num_kv_heads;
  shape.head_dim = c.head_dim;
  STRATA_ASSIGN_OR_RETURN(kv_, KvCache::Create(backend_, shape));
  return absl::OkStatus();
}

absl::Status LlamaModel::InitTp() {
  const ModelLoadOptions& o = context_.options;
  STRATA_ASSIGN_OR_RETURN(tp_, PlanTpShard(config_, o.tp_rank, o.tp_size));
  if (o.tp_size == 1) return absl::OkStatus();
  if (o.comm == nullptr || o.comm->world_size() != o.tp_size || o.comm->rank() != o.tp_rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor-parallel rank ", o.tp_rank, " of ", o.tp_size,
        " needs a communicator of that rank and size, got ",
        o.comm == nullptr ? std::string("none")
                          : absl::StrCat("rank ", o.comm->rank(), " of ", o.comm->world_size())));
  }
  // Collectives run on the backend's buffers: host memory unless the backend is a device one.
  if (o.comm->device_memory() != (backend_.name() != "cpu")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the communicator's memory space does not match the '",
        std::string(backend_.name()), "' backend"));
  }
  return absl::OkStatus();
}

absl::Status LlamaModel::InitRope() {
  const WeightSource& source = *context_.weights;
  if (!context_.gguf_names || !source.Has(kGgufRopeFreqs)) {
    inv_freq_ = RopeInvFreq(config_);
    return absl::OkStatus();
  }
  // llama.cpp divides each base frequency by its factor from `rope_freqs.weight`.
  STRATA_ASSIGN_OR_RETURN(TensorView factors, source.Get(kGgufRopeFreqs));
  if (factors.shape != Shape{config_.head_dim / 2} || factors.dtype != DType::kF32) {
    return absl::InvalidArgumentError(absl::StrCat(
        source.path(), ": tensor 'rope_freqs.weight' has shape ", ShapeToString(factors.shape),
        " ", DTypeName(factors.dtype), ", expected [", config_.head_dim / 2, "] f32"));
  }
  ModelConfig unscaled = config_;
  unscaled.rope_scaling = RopeScaling{};
  inv_freq_ = RopeInvFreq(unscaled);
  const auto* f = reinterpret_cast<const float*>(factors.data);
  for (size_t i = 0; i < inv_freq_.size(); ++i) inv_freq_[i] /= f[i];
  return absl::OkStatus();
}

absl::Status LlamaModel::EnsureScratch(int64_t tokens, int64_t logit_rows) {
  const ModelConfig& c = config_;
  Scratch& s = scratch_;
  auto grow = [&](std::unique_ptr<Buffer>& b, int64_t n) -> absl::Status {
    if (b && b->size() >= n) return absl::OkStatus();
    STRATA_ASSIGN_OR_RETURN(b, backend_.Allocate(n));
    return absl::OkStatus();
  };
  if (tokens > s.tokens) {
    const int64_t q_dim = tp_.num_heads * c.head_dim, kv_dim = tp_.num_kv_heads * c.head_dim;
    STRATA_RETURN_IF_ERROR(grow(s.x, tokens * c.hidden_size));
    STRATA_RETURN_IF_ERROR(grow(s.h, tokens * c.hidden_size));
    STRATA_RETURN_IF_ERROR(grow(s.q, tokens * q_dim));
    STRATA_RETURN_IF_ERROR(grow(s.k, tokens * kv_dim));
    STRATA_RETURN_IF_ERROR(grow(s.v, tokens * kv_dim));
    STRATA_RETURN_IF_ERROR(grow(s.attn, tokens * q_dim));
    STRATA_RETURN_IF_ERROR(grow(s.gate, tokens * tp_.ffn_size));
    STRATA_RETURN_IF_ERROR(grow(s.up, tokens * tp_.ffn_size));
    if (tp_.size > 1) STRATA_RETURN_IF_ERROR(grow(s.embed, (tokens + 1) * c.hidden_size));
    s.tokens = tokens;
  }
  if (is_last_stage() && logit_rows > s.logit_rows) {
    STRATA_RETURN_IF_ERROR(grow(s.logits, logit_rows * tp_.vocab_stride));
    if (tp_.size > 1) {
      STRATA_RETURN_IF_ERROR(grow(s.gathered, tp_.size * logit_rows * tp_.vocab_stride));
    }
    s.logit_rows = logit_rows;
  }
  return absl::OkStatus();
}

absl::Status LlamaModel::RunLayer(int64_t layer, const StepBatch& batch,
                                  const AttentionBatch& attn_batch) {
  const ModelConfig& c = config_;
  const LayerWeights& w = layers_[layer - layer_begin()];
  const k::PagedKv& cache = kv_->Layer(layer - layer_begin());
  const int64_t t = batch.num_tokens();
  const float eps = static_cast<float>(c.rms_norm_eps);
  const auto layout = c.rope_layout == RopeLayout::kInterleaved ? k::RopeLayout::kInterleaved
                                                                 : k::RopeLayout::kHalfSplit;
  Scratch& s = scratch_;
  float* x = s.x->data();
  float* h = s.h->data();

  // Attention block.
  backend_.RmsNorm(x, w.attn_norm, t, c.hidden_size, eps, h);
  const Weight* qkv[] = {&w.wq, &w.wk, &w.wv};
  float* qkv_out[] = {s.q->data(), s.k->data(), s.v->data()};
  backend_.MatMulGroup(h, t, qkv, qkv_out);
  backend_.Rope(s.q->data(), t, tp_.num_heads, c.head_dim, batch.positions.data(),
                inv_freq_.data(), c.head_dim, layout);
  backend_.Rope(s.k->data(), t, tp_.num_kv_heads, c.head_dim, batch.positions.data(),
                inv_freq_.data(), c.head_dim, layout);
  backend_.WriteKv(cache, s.k->data(), s.v->data(), batch.slot_mapping.data(), t);
  k::AttentionParams params;
  params.num_heads = tp_.num_heads;
  params.num_kv_heads = tp_.num_kv_heads;
  params.head_dim = c.head_dim;
  params.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  params.sliding_window = c.sliding_window;
  backend_.Attention(s.q->data(), cache, attn_batch, params, s.attn->data());
  backend_.MatMul(s.attn->data(), t, w.wo, h);  // partial sum over this rank's heads
  STRATA_RETURN_IF_ERROR(AllReduce(h, t * c.hidden_size));
  backend_.Add(x, h, t * c.hidden_size);

  // MLP block.
  backend_.RmsNorm(x, w.ffn_norm, t, c.hidden_size, eps, h);
  const Weight* gate_up[] = {&w.w_gate, &w.w_up};
  float* gate_up_out[] = {s.gate->data(), s.up->data()};
  backend_.MatMulGroup(h, t, gate_up, gate_up_out);
  backend_.SiluMul(s.gate->data(), s.up->data(), t * tp_.ffn_size, s.gate->data());
  backend_.MatMul(s.gate->data(), t, w.w_down, h);  // partial sum over this rank's columns
  STRATA_RETURN_IF_ERROR(AllReduce(h, t * c.hidden_size));
  backend_.Add(x, h, t * c.hidden_size);
  return absl::OkStatus();
}

absl::Status LlamaModel::Embed(const StepBatch& batch, float* x) {
  const int64_t t = batch.num_tokens(), hidden = config_.hidden_size;
  if (tp_.size == 1) {
    backend_.Embedding(embed_, batch.tokens.data(), t, x);
    return absl::OkStatus();
  }
  // Embed the tokens of this rank's vocab slice into rows 1.. of `embed`, then gather every
  // token's row from there, or the zero row 0 for tokens another rank holds.
  std::vector<int32_t> local_ids, rows(t);
  for (int64_t i = 0; i < t; ++i) {
    const int64_t id = batch.tokens[i] - tp_.vocab_begin;
    if (id < 0 || id >= tp_.vocab_size) {
      rows[i] = 0;
    } else {
      local_ids.push_back(static_cast<int32_t>(id));
      rows[i] = static_cast<int32_t>(local_ids.size());
    }
  }
  float* embed = scratch_.embed->data();
  const int64_t n = static_cast<int64_t>(local_ids.size());
  if (n > 0) backend_.Embedding(embed_, local_ids.data(), n, embed + hidden);
  backend_.GatherRows(embed, rows.data(), t, hidden, x);
  return AllReduce(x, t * hidden);
}

absl::Status LlamaModel::LmHead(const float* h, int64_t rows, std::vector<float>& out) {
  const int64_t vocab = config_.vocab_size;
  float* logits = scratch_.logits->data();  // [rows, tp_.vocab_size] + padding
  backend_.MatMul(h, rows, lm_head_, logits);
  out.resize(rows * vocab);
  if (tp_.size == 1) {
    backend_.CopyToHost(logits, out.data(), rows * vocab);
    return absl::OkStatus();
  }
  const int64_t slice = rows * tp_.vocab_stride;
  float* gathered = scratch_.gathered->data();  // [tp, slice]
  STRATA_RETURN_IF_ERROR(context_.options.comm->AllGather(logits, slice, gathered));
  gathered_host_.resize(tp_.size * slice);
  backend_.CopyToHost(gathered, gathered_host_.data(), tp_.size * slice);
  AssembleVocabSlices(tp_, vocab, rows, gathered_host_, absl::MakeSpan(out));
  return absl::OkStatus();
}

absl::Status LlamaModel::Forward(const StepBatch& batch, absl::Span<const float> hidden_in,
                                 std::vector<float>& out) {
  const ModelConfig& c = config_;
  STRATA_RETURN_IF_ERROR(batch.Validate(c.vocab_size, c.max_position_embeddings,
                                        kv_->shape().num_blocks, kv_->shape().block_size));
  const int64_t t = batch.num_tokens();
  if (t == 0) {
    out.clear();
    return absl::OkStatus();
  }
  const int64_t rows = static_cast<int64_t>(batch.logit_rows.size());
  STRATA_RETURN_IF_ERROR(EnsureScratch(t, rows));
  float* x = scratch_.x->data();
  if (is_first_stage()) {
    STRATA_RETURN_IF_ERROR(Embed(batch, x));
  } else {
    if (static_cast<int64_t>(hidden_in.size()) != t * c.hidden_size) {
      return absl::InvalidArgumentError(absl::StrCat("step: hidden states hold ", hidden_in.size(),
                                                     " values, expected ", t, " x ", c.hidden_size));
    }
    backend_.CopyFromHost(hidden_in.data(), x, t * c.hidden_size);
  }

  AttentionBatch attn_batch;
  attn_batch.block_tables = batch.block_tables.data();
  attn_batch.max_blocks_per_seq = batch.max_blocks_per_seq;
  attn_batch.query_start = batch.query_start.data();
  attn_batch.context_lens = batch.context_lens.data();
  attn_batch.num_seqs = batch.num_seqs();
  for (int64_t l = layer_begin(); l < layer_end(); ++l) {
    STRATA_RETURN_IF_ERROR(RunLayer(l, batch, attn_batch));
  }

  if (!is_last_stage()) {
    out.resize(t * c.hidden_size);
    backend_.CopyToHost(x, out.data(), t * c.hidden_size);
    return absl::OkStatus();
  }
  // Only the rows that need logits go through the final norm and lm_head; a chunk of a
  // prompt that samples nothing has none (and its logits scratch may never have been sized).
  if (rows == 0) {
    out.clear();
    return absl::OkStatus();
  }
  float* h = scratch_.h->data();
  backend_.GatherRows(x, batch.logit_rows.data(), rows, c.hidden_size, h);
  backend_.RmsNorm(h, final_norm_, rows, c.hidden_size, static_cast<float>(c.rms_norm_eps), h);
  return LmHead(h, rows, out);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRunner>> CreateLlamaModel(const ModelContext& context) {
  auto model = std::make_unique<LlamaModel>(context);
  STRATA_RETURN_IF_ERROR(model->Init());
  return model;
}

}  // namespace strata

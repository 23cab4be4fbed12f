// Llama-family decoder (Llama 2/3, Mistral with its sliding window): pre-norm blocks
// of RMSNorm -> GQA self-attention with RoPE -> residual, RMSNorm -> SwiGLU MLP -> residual;
// final RMSNorm and lm_head (tied to the embedding when the checkpoint says so).
//
// Hugging Face checkpoints rotate half-split pairs; GGUF checkpoints have q/k rows permuted by
// llama.cpp's converter and rotate interleaved pairs. Llama 3.1 frequency scaling comes from
// config.json (HF) or the `rope_freqs.weight` tensor (GGUF).
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/substitute.h"
#include "common/logging.h"
#include "common/status.h"
#include "worker/kv_cache/kv_cache.h"
#include "worker/model/model_registry.h"

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

struct LayerWeights {
  Weight attn_norm, wq, wk, wv, wo;  // wq: [heads * head_dim, hidden], wo: [hidden, heads * head_dim]
  Weight ffn_norm, w_gate, w_up, w_down;  // gate/up: [intermediate, hidden], down: [hidden, intermediate]
};

// Per-step activations, grown on demand and reused.
struct Scratch {
  std::unique_ptr<Buffer> x, h, q, k, v, attn, gate, up, logits;
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
  // Loads one tensor and checks its shape; `matrix` weights may be converted to the requested
  // dtype, vectors are always f32.
  absl::StatusOr<Weight> Load(const WeightName& name, int64_t layer, const Shape& shape,
                              bool matrix);
  absl::Status InitRope();
  int64_t EmbedBytes() const { return embed_.view.Rows() * embed_.view.RowBytes(); }
  absl::Status EnsureScratch(int64_t tokens, int64_t logit_rows);
  void RunLayer(int64_t layer, const StepBatch& batch, const AttentionBatch& attn_batch);

  ModelContext context_;
  const ModelConfig& config_;
  Backend& backend_;
  Weight embed_, final_norm_, lm_head_;
  std::vector<LayerWeights> layers_;
  std::vector<float> inv_freq_;  // [head_dim / 2], host
  std::unique_ptr<KvCache> kv_;
  Scratch scratch_;
  int64_t weight_bytes_ = 0;
};

absl::StatusOr<Weight> LlamaModel::Load(const WeightName& name, int64_t layer, const Shape& shape,
                                        bool matrix) {
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
  return weight;
}

absl::Status LlamaModel::Init() {
  const ModelConfig& c = config_;
  if (c.attention_bias || c.mlp_bias || c.IsMoe() || c.quant.method != QuantMethod::kNone) {
    return absl::UnimplementedError(absl::StrCat(
        context_.weights->path(), ": ", c.architecture,
        " with attention/MLP biases, experts or a quantization_config is not supported yet"));
  }
  const int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  const ModelLoadOptions& o = context_.options;
  if (is_first_stage() || (is_last_stage() && c.tie_word_embeddings)) {
    STRATA_ASSIGN_OR_RETURN(embed_, Load(kEmbed, 0, {c.vocab_size, c.hidden_size}, true));
  }
  if (is_last_stage()) {
    STRATA_ASSIGN_OR_RETURN(final_norm_, Load(kFinalNorm, 0, {c.hidden_size}, false));
    if (c.tie_word_embeddings) {
      lm_head_ = embed_;
    } else {
      STRATA_ASSIGN_OR_RETURN(lm_head_, Load(kLmHead, 0, {c.vocab_size, c.hidden_size}, true));
    }
  }
  for (int64_t l = o.layer_begin; l < o.layer_end; ++l) {
    LayerWeights w;
    STRATA_ASSIGN_OR_RETURN(w.attn_norm, Load(kAttnNorm, l, {c.hidden_size}, false));
    STRATA_ASSIGN_OR_RETURN(w.wq, Load(kWq, l, {q_dim, c.hidden_size}, true));
    STRATA_ASSIGN_OR_RETURN(w.wk, Load(kWk, l, {kv_dim, c.hidden_size}, true));
    STRATA_ASSIGN_OR_RETURN(w.wv, Load(kWv, l, {kv_dim, c.hidden_size}, true));
    STRATA_ASSIGN_OR_RETURN(w.wo, Load(kWo, l, {c.hidden_size, q_dim}, true));
    STRATA_ASSIGN_OR_RETURN(w.ffn_norm, Load(kFfnNorm, l, {c.hidden_size}, false));
    STRATA_ASSIGN_OR_RETURN(w.w_gate, Load(kWGate, l, {c.intermediate_size, c.hidden_size}, true));
    STRATA_ASSIGN_OR_RETURN(w.w_up, Load(kWUp, l, {c.intermediate_size, c.hidden_size}, true));
    STRATA_ASSIGN_OR_RETURN(w.w_down, Load(kWDown, l, {c.hidden_size, c.intermediate_size}, true));
    layers_.push_back(std::move(w));
  }
  STRATA_RETURN_IF_ERROR(InitRope());

  KvCacheShape shape;
  shape.num_layers = o.layer_end - o.layer_begin;
  shape.num_blocks = o.kv_blocks;
  shape.block_size = o.kv_block_size;
  shape.num_kv_heads = c.num_kv_heads;
  shape.head_dim = c.head_dim;
  STRATA_ASSIGN_OR_RETURN(kv_, KvCache::Create(backend_, shape));
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
    const int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
    STRATA_RETURN_IF_ERROR(grow(s.x, tokens * c.hidden_size));
    STRATA_RETURN_IF_ERROR(grow(s.h, tokens * c.hidden_size));
    STRATA_RETURN_IF_ERROR(grow(s.q, tokens * q_dim));
    STRATA_RETURN_IF_ERROR(grow(s.k, tokens * kv_dim));
    STRATA_RETURN_IF_ERROR(grow(s.v, tokens * kv_dim));
    STRATA_RETURN_IF_ERROR(grow(s.attn, tokens * q_dim));
    STRATA_RETURN_IF_ERROR(grow(s.gate, tokens * c.intermediate_size));
    STRATA_RETURN_IF_ERROR(grow(s.up, tokens * c.intermediate_size));
    s.tokens = tokens;
  }
  if (is_last_stage() && logit_rows > s.logit_rows) {
    STRATA_RETURN_IF_ERROR(grow(s.logits, logit_rows * c.vocab_size));
    s.logit_rows = logit_rows;
  }
  return absl::OkStatus();
}

void LlamaModel::RunLayer(int64_t layer, const StepBatch& batch, const AttentionBatch& attn_batch) {
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
  backend_.Rope(s.q->data(), t, c.num_heads, c.head_dim, batch.positions.data(), inv_freq_.data(),
                c.head_dim, layout);
  backend_.Rope(s.k->data(), t, c.num_kv_heads, c.head_dim, batch.positions.data(),
                inv_freq_.data(), c.head_dim, layout);
  backend_.WriteKv(cache, s.k->data(), s.v->data(), batch.slot_mapping.data(), t);
  k::AttentionParams params;
  params.num_heads = c.num_heads;
  params.num_kv_heads = c.num_kv_heads;
  params.head_dim = c.head_dim;
  params.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  params.sliding_window = c.sliding_window;
  backend_.Attention(s.q->data(), cache, attn_batch, params, s.attn->data());
  backend_.MatMul(s.attn->data(), t, w.wo, h);
  backend_.Add(x, h, t * c.hidden_size);

  // MLP block.
  backend_.RmsNorm(x, w.ffn_norm, t, c.hidden_size, eps, h);
  const Weight* gate_up[] = {&w.w_gate, &w.w_up};
  float* gate_up_out[] = {s.gate->data(), s.up->data()};
  backend_.MatMulGroup(h, t, gate_up, gate_up_out);
  backend_.SiluMul(s.gate->data(), s.up->data(), t * c.intermediate_size, s.gate->data());
  backend_.MatMul(s.gate->data(), t, w.w_down, h);
  backend_.Add(x, h, t * c.hidden_size);
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
    backend_.Embedding(embed_, batch.tokens.data(), t, x);
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
  for (int64_t l = layer_begin(); l < layer_end(); ++l) RunLayer(l, batch, attn_batch);

  if (!is_last_stage()) {
    out.resize(t * c.hidden_size);
    backend_.CopyToHost(x, out.data(), t * c.hidden_size);
    return absl::OkStatus();
  }
  // Only the rows that need logits go through the final norm and lm_head.
  float* h = scratch_.h->data();
  backend_.GatherRows(x, batch.logit_rows.data(), rows, c.hidden_size, h);
  backend_.RmsNorm(h, final_norm_, rows, c.hidden_size, static_cast<float>(c.rms_norm_eps), h);
  backend_.MatMul(h, rows, lm_head_, scratch_.logits->data());
  out.resize(rows * c.vocab_size);
  backend_.CopyToHost(scratch_.logits->data(), out.data(), rows * c.vocab_size);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRunner>> CreateLlamaModel(const ModelContext& context) {
  auto model = std::make_unique<LlamaModel>(context);
  STRATA_RETURN_IF_ERROR(model->Init());
  return model;
}

}  // namespace strata

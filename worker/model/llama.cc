// Llama (2, 3, 3.1 with llama3 RoPE scaling) and the families built from its layer: pre-norm
// blocks of RMSNorm -> GQA self-attention with RoPE -> residual, RMSNorm -> SwiGLU MLP ->
// residual; the final RMSNorm and an lm_head, tied to the embedding when the checkpoint says
// so. Optional attention and MLP biases (attention_bias, mlp_bias) and a sliding window come
// from the config.
//
// Hugging Face checkpoints rotate half-split pairs; GGUF `llama` checkpoints have q/k rows
// permuted by llama.cpp's converter and rotate interleaved pairs (the config records which).
// Llama 3.1's frequency scaling comes from config.json, or from the GGUF `rope_freqs` tensor.
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/model/families.h"
#include "worker/model/layers/attention.h"
#include "worker/model/layers/mlp.h"

namespace strata {
namespace {

class LlamaLayer final : public DecoderLayer {
 public:
  absl::Status Forward(StepContext& ctx, const KvLayer& kv, const Tensor& x) override {
    const Tensor h = ctx.ws.Get("h", x.shape), o = ctx.ws.Get("o", x.shape);
    attn_norm_.Forward(ctx.backend, x, h);
    STRATA_RETURN_IF_ERROR(attn_->Forward(ctx, kv, h, o));
    ffn_norm_.AddForward(ctx.backend, x, o, h);  // x += attention; h = norm(x)
    STRATA_RETURN_IF_ERROR(mlp_.Forward(ctx, h, o));
    ctx.backend.Add(x, o);
    return absl::OkStatus();
  }
  KvSpec kv_spec() const override { return attn_->kv_spec(); }

  Norm attn_norm_, ffn_norm_;
  std::unique_ptr<Attention> attn_;
  Mlp mlp_;
};

}  // namespace

const NameTable& LlamaNames() {
  static const NameTable names = {
      {"embed", {"model.embed_tokens", "token_embd"}},
      {"final_norm", {"model.norm", "output_norm"}},
      {"lm_head", {"lm_head", "output"}},
      {"rope_freqs", {"", "rope_freqs"}},
      {"attn_norm", {"model.layers.$0.input_layernorm", "blk.$0.attn_norm"}},
      {"wq", {"model.layers.$0.self_attn.q_proj", "blk.$0.attn_q"}},
      {"wk", {"model.layers.$0.self_attn.k_proj", "blk.$0.attn_k"}},
      {"wv", {"model.layers.$0.self_attn.v_proj", "blk.$0.attn_v"}},
      {"wo", {"model.layers.$0.self_attn.o_proj", "blk.$0.attn_output"}},
      {"ffn_norm", {"model.layers.$0.post_attention_layernorm", "blk.$0.ffn_norm"}},
      {"w_gate", {"model.layers.$0.mlp.gate_proj", "blk.$0.ffn_gate"}},
      {"w_up", {"model.layers.$0.mlp.up_proj", "blk.$0.ffn_up"}},
      {"w_down", {"model.layers.$0.mlp.down_proj", "blk.$0.ffn_down"}},
  };
  return names;
}

absl::StatusOr<std::unique_ptr<DecoderLayer>> BuildLlamaLayer(LayerBuilder& b) {
  const ModelConfig& c = b.config;
  auto layer = std::make_unique<LlamaLayer>();
  STRATA_ASSIGN_OR_RETURN(layer->attn_norm_,
                          Norm::Load(b.weights, "attn_norm", b.layer, c.hidden_size, RmsNormSpec(c)));
  AttentionSpec attn;
  attn.hidden = c.hidden_size;
  attn.num_heads = c.num_heads;
  attn.num_kv_heads = c.num_kv_heads;
  attn.head_dim = c.head_dim;
  attn.qkv_bias = attn.o_bias = c.attention_bias;
  attn.sliding_window = c.sliding_window;
  STRATA_ASSIGN_OR_RETURN(layer->attn_, Attention::Load(b, attn));
  STRATA_ASSIGN_OR_RETURN(layer->ffn_norm_,
                          Norm::Load(b.weights, "ffn_norm", b.layer, c.hidden_size, RmsNormSpec(c)));
  MlpSpec mlp;
  mlp.hidden = c.hidden_size;
  mlp.ffn = c.intermediate_size;
  mlp.bias = c.mlp_bias;
  STRATA_ASSIGN_OR_RETURN(layer->mlp_, Mlp::Load(b, mlp));
  b.ws.Reserve("o", c.hidden_size);
  return layer;
}

DecoderSpec LlamaDecoder(const ModelConfig& config, bool) {
  DecoderSpec d;
  d.final_norm = RmsNormSpec(config);
  return d;
}

absl::Status CheckDense(const ModelConfig& config) {
  if (config.IsMoe()) {
    return absl::UnimplementedError(absl::StrCat(
        config.architecture, " with ", config.moe.num_experts,
        " experts: this family is dense; mixture-of-experts checkpoints need their own family"));
  }
  return absl::OkStatus();
}

const Family& LlamaFamily() {
  static const Family family = {
      .name = "llama",
      .architectures = {"LlamaForCausalLM"},
      .gguf_architectures = {"llama"},
      .names = &LlamaNames(),
      .check = &CheckDense,
      .decoder = &LlamaDecoder,
      .build_layer = &BuildLlamaLayer,
  };
  return family;
}

}  // namespace strata

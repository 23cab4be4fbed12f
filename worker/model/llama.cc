// Llama (2, 3, 3.1 with llama3 RoPE scaling): pre-norm blocks of RMSNorm -> GQA self-attention
// with RoPE, RMSNorm -> SwiGLU MLP; the final RMSNorm and an lm_head, tied to the embedding
// when the checkpoint says so. Optional attention and MLP biases (attention_bias, mlp_bias)
// and a sliding window come from the config. Also the pieces the other families reuse.
//
// Hugging Face checkpoints rotate half-split pairs; GGUF `llama` checkpoints have q/k rows
// permuted by llama.cpp's converter and rotate interleaved pairs (the config records which).
// Llama 3.1's frequency scaling comes from config.json, or from the GGUF `rope_freqs` tensor.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "worker/model/families.h"

namespace strata {

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

AttentionSpec LlamaAttention(const ModelConfig& c) {
  AttentionSpec a;
  a.hidden = c.hidden_size;
  a.num_heads = c.num_heads;
  a.num_kv_heads = c.num_kv_heads;
  a.head_dim = c.head_dim;
  a.qkv_bias = a.o_bias = c.attention_bias;
  a.sliding_window = c.sliding_window;
  return a;
}

MlpSpec LlamaMlp(const ModelConfig& c) {
  MlpSpec m;
  m.hidden = c.hidden_size;
  m.ffn = c.intermediate_size;
  m.bias = c.mlp_bias;
  m.activation = ActivationOf(c).value_or(Activation::kSilu);  // checked when opened
  return m;
}

BlockSpec PreNormBlock(const ModelConfig& c) {
  BlockSpec b;
  b.norm = RmsNormSpec(c);
  return b;
}

absl::StatusOr<std::unique_ptr<DecoderLayer>> BuildBlock(LayerBuilder& b, const BlockSpec& block,
                                                          const AttentionSpec& attention,
                                                          const MlpSpec& mlp) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Attention> attn, Attention::Load(b, attention));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Mlp> ffn, Mlp::Load(b, mlp));
  return DecoderBlock::Build(b, block, std::move(attn), std::move(ffn));
}

absl::StatusOr<std::unique_ptr<DecoderLayer>> BuildLlamaLayer(LayerBuilder& b) {
  return BuildBlock(b, PreNormBlock(b.config), LlamaAttention(b.config), LlamaMlp(b.config));
}

DecoderSpec LlamaDecoder(const ModelConfig& config, bool) {
  DecoderSpec d;
  d.final_norm = RmsNormSpec(config);
  return d;
}

absl::StatusOr<Activation> ActivationOf(const ModelConfig& c) {
  const std::string& a = c.hidden_act;
  if (a == "silu" || a == "swish") return Activation::kSilu;
  if (a == "gelu") return Activation::kGeluErf;
  if (a == "gelu_new" || a == "gelu_pytorch_tanh" || a == "gelu_fast") return Activation::kGeluTanh;
  return absl::UnimplementedError(absl::StrCat(
      "hidden_act '", a, "' is not supported (supported: silu, gelu, gelu_new, gelu_pytorch_tanh)"));
}

absl::Status CheckNothingUnsupported(const ModelConfig& config) {
  if (config.unsupported.empty()) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrCat(config.architecture, " with ",
                                               absl::StrJoin(config.unsupported, ", "),
                                               " is not supported"));
}

absl::Status CheckDense(const ModelConfig& config) {
  if (config.IsMoe()) {
    return absl::UnimplementedError(absl::StrCat(
        config.architecture, " with ", config.moe.num_experts,
        " experts: this family is dense; mixture-of-experts checkpoints need their own family"));
  }
  STRATA_RETURN_IF_ERROR(ActivationOf(config).status());
  return CheckNothingUnsupported(config);
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

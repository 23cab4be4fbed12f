// Phi-3 (and 3.5): Llama's pre-norm layer with fused projections — qkv_proj ([q; k; v] rows)
// and gate_up_proj ([gate; up] rows), each rank slicing its heads and columns out of every
// part — a sliding window, and LongRoPE (short and long factors) for the 128k variants.
//
// Phi-2: one LayerNorm (with bias) feeding attention and a GELU MLP in parallel, biases on
// every projection and on the lm_head, RoPE on the first partial_rotary_factor of each head.
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/model/families.h"

namespace strata {
namespace {

const NameTable& Phi3Names() {
  static const NameTable names = LlamaNames().With({
      {"wqkv", {"model.layers.$0.self_attn.qkv_proj", "blk.$0.attn_qkv"}},
      {"w_gate_up", {"model.layers.$0.mlp.gate_up_proj", "blk.$0.ffn_up"}},
  });
  return names;
}

absl::StatusOr<std::unique_ptr<DecoderLayer>> BuildPhi3Layer(LayerBuilder& b) {
  AttentionSpec attn = LlamaAttention(b.config);
  attn.fused_qkv = true;
  MlpSpec mlp = LlamaMlp(b.config);
  mlp.fused_gate_up = true;
  return BuildBlock(b, PreNormBlock(b.config), attn, mlp);
}

const NameTable& Phi2Names() {
  static const NameTable names = {
      {"embed", {"model.embed_tokens", "token_embd"}},
      {"final_norm", {"model.final_layernorm", "output_norm"}},
      {"lm_head", {"lm_head", "output"}},
      {"attn_norm", {"model.layers.$0.input_layernorm", "blk.$0.attn_norm"}},
      {"wq", {"model.layers.$0.self_attn.q_proj", "blk.$0.attn_q"}},
      {"wk", {"model.layers.$0.self_attn.k_proj", "blk.$0.attn_k"}},
      {"wv", {"model.layers.$0.self_attn.v_proj", "blk.$0.attn_v"}},
      {"wqkv", {"", "blk.$0.attn_qkv"}},  // older GGUF conversions fuse them
      {"wo", {"model.layers.$0.self_attn.dense", "blk.$0.attn_output"}},
      {"w_up", {"model.layers.$0.mlp.fc1", "blk.$0.ffn_up"}},
      {"w_down", {"model.layers.$0.mlp.fc2", "blk.$0.ffn_down"}},
  };
  return names;
}

absl::StatusOr<std::unique_ptr<DecoderLayer>> BuildPhi2Layer(LayerBuilder& b) {
  AttentionSpec attn = LlamaAttention(b.config);
  attn.qkv_bias = attn.o_bias = true;
  attn.fused_qkv = b.weights.Has("wqkv", b.layer);
  MlpSpec mlp = LlamaMlp(b.config);
  mlp.gated = false;
  mlp.bias = true;
  BlockSpec block;
  block.norm = LayerNormSpec(b.config);
  block.parallel = true;
  return BuildBlock(b, block, attn, mlp);
}

DecoderSpec Phi2Decoder(const ModelConfig& config, bool) {
  DecoderSpec d;
  d.final_norm = LayerNormSpec(config);
  d.lm_head_bias = true;
  return d;
}

}  // namespace

const Family& Phi3Family() {
  static const Family family = {
      .name = "phi3",
      .architectures = {"Phi3ForCausalLM"},
      .gguf_architectures = {"phi3"},
      .names = &Phi3Names(),
      .check = &CheckDense,
      .decoder = &LlamaDecoder,
      .build_layer = &BuildPhi3Layer,
  };
  return family;
}

const Family& Phi2Family() {
  static const Family family = {
      .name = "phi2",
      .architectures = {"PhiForCausalLM"},
      .gguf_architectures = {"phi2"},
      .names = &Phi2Names(),
      .check = &CheckDense,
      .decoder = &Phi2Decoder,
      .build_layer = &BuildPhi2Layer,
  };
  return family;
}

}  // namespace strata

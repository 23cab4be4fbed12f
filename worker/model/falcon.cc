// Falcon (the 7B layout): multi-query attention (one KV head, replicated on every TP rank)
// through a fused query_key_value ([q heads; k; v] rows), attention and a GELU MLP in parallel
// from one LayerNorm (with bias), rotary embeddings, no linear biases, a tied head. The 40B /
// 180B layout (grouped qkv, two norms) and ALiBi variants are refused by name.
#include "worker/model/families.h"

namespace strata {
namespace {

const NameTable& FalconNames() {
  static const NameTable names = {
      {"embed", {"transformer.word_embeddings", "token_embd"}},
      {"final_norm", {"transformer.ln_f", "output_norm"}},
      {"lm_head", {"lm_head", "output"}},
      {"attn_norm", {"transformer.h.$0.input_layernorm", "blk.$0.attn_norm"}},
      {"wqkv", {"transformer.h.$0.self_attention.query_key_value", "blk.$0.attn_qkv"}},
      {"wo", {"transformer.h.$0.self_attention.dense", "blk.$0.attn_output"}},
      {"w_up", {"transformer.h.$0.mlp.dense_h_to_4h", "blk.$0.ffn_up"}},
      {"w_down", {"transformer.h.$0.mlp.dense_4h_to_h", "blk.$0.ffn_down"}},
  };
  return names;
}

absl::StatusOr<std::unique_ptr<DecoderLayer>> BuildFalconLayer(LayerBuilder& b) {
  AttentionSpec attn = LlamaAttention(b.config);
  attn.fused_qkv = true;
  MlpSpec mlp = LlamaMlp(b.config);
  mlp.gated = false;
  BlockSpec block;
  block.norm = LayerNormSpec(b.config);
  block.parallel = true;
  return BuildBlock(b, block, attn, mlp);
}

DecoderSpec FalconDecoder(const ModelConfig& config, bool) {
  DecoderSpec d;
  d.final_norm = LayerNormSpec(config);
  return d;
}

}  // namespace

const Family& FalconFamily() {
  static const Family family = {
      .name = "falcon",
      .architectures = {"FalconForCausalLM"},
      .gguf_architectures = {"falcon"},
      .names = &FalconNames(),
      .check = &CheckDense,
      .decoder = &FalconDecoder,
      .build_layer = &BuildFalconLayer,
  };
  return family;
}

}  // namespace strata

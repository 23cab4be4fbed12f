// OLMo 2: no norms before attention or MLP; an RMSNorm on each block's output before its
// residual add, and RMSNorms over the whole q and k projections (not per head: under tensor
// parallelism each rank gathers the others' heads for them).
#include "worker/model/families.h"

namespace strata {
namespace {

const NameTable& Olmo2Names() {
  static const NameTable names = LlamaNames().With({
      {"attn_post_norm", {"model.layers.$0.post_attention_layernorm", "blk.$0.post_attention_norm"}},
      {"ffn_post_norm", {"model.layers.$0.post_feedforward_layernorm", "blk.$0.post_ffw_norm"}},
      {"q_norm", {"model.layers.$0.self_attn.q_norm", "blk.$0.attn_q_norm"}},
      {"k_norm", {"model.layers.$0.self_attn.k_norm", "blk.$0.attn_k_norm"}},
  });
  return names;
}

absl::StatusOr<std::unique_ptr<DecoderLayer>> BuildOlmo2Layer(LayerBuilder& b) {
  AttentionSpec attn = LlamaAttention(b.config);
  attn.qk_norm = AttentionSpec::QkNorm::kWhole;
  attn.qk_norm_spec = RmsNormSpec(b.config);
  BlockSpec block = PreNormBlock(b.config);
  block.attn_pre_norm = block.ffn_pre_norm = false;
  block.attn_post_norm = block.ffn_post_norm = true;
  return BuildBlock(b, block, attn, LlamaMlp(b.config));
}

}  // namespace

const Family& Olmo2Family() {
  static const Family family = {
      .name = "olmo2",
      .architectures = {"Olmo2ForCausalLM"},
      .gguf_architectures = {"olmo2"},
      .names = &Olmo2Names(),
      .check = &CheckDense,
      .decoder = &LlamaDecoder,
      .build_layer = &BuildOlmo2Layer,
  };
  return family;
}

}  // namespace strata

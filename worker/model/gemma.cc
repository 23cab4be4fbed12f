// Gemma 2: sandwich blocks (an RMSNorm before and after both attention and MLP), norms that
// scale by (1 + w) (Hugging Face stores w; llama.cpp's converter folds the 1 in), a GELU-tanh
// gated MLP, the embedding scaled by sqrt(hidden), tanh soft-capping of attention scores and
// of the final logits, the attention scale query_pre_attn_scalar^-1/2, and a sliding window on
// every other layer (the even ones) in the same paged cache. The head is tied.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/model/families.h"

namespace strata {
namespace {

const NameTable& Gemma2Names() {
  static const NameTable names = LlamaNames().With({
      {"attn_post_norm", {"model.layers.$0.post_attention_layernorm", "blk.$0.post_attention_norm"}},
      {"ffn_norm", {"model.layers.$0.pre_feedforward_layernorm", "blk.$0.ffn_norm"}},
      {"ffn_post_norm", {"model.layers.$0.post_feedforward_layernorm", "blk.$0.post_ffw_norm"}},
  });
  return names;
}

NormSpec GemmaNorm(const ModelConfig& c, bool gguf) {
  NormSpec n = RmsNormSpec(c);
  n.unit_offset = !gguf;
  return n;
}

absl::StatusOr<std::unique_ptr<DecoderLayer>> BuildGemma2Layer(LayerBuilder& b) {
  const ModelConfig& c = b.config;
  AttentionSpec attn = LlamaAttention(c);
  if (c.query_pre_attn_scalar > 0) {
    attn.scale = static_cast<float>(1.0 / std::sqrt(c.query_pre_attn_scalar));
  }
  attn.softcap = static_cast<float>(c.attn_logit_softcap);
  attn.sliding_window = b.layer % 2 == 0 ? c.sliding_window : 0;
  BlockSpec block;
  block.norm = GemmaNorm(c, b.weights.gguf_names());
  block.attn_post_norm = block.ffn_post_norm = true;
  return BuildBlock(b, block, attn, LlamaMlp(c));
}

DecoderSpec Gemma2Decoder(const ModelConfig& c, bool gguf) {
  DecoderSpec d;
  d.embed_scale = std::sqrt(static_cast<float>(c.hidden_size));
  d.final_norm = GemmaNorm(c, gguf);
  d.final_softcap = static_cast<float>(c.final_logit_softcap);
  return d;
}

}  // namespace

const Family& Gemma2Family() {
  static const Family family = {
      .name = "gemma2",
      .architectures = {"Gemma2ForCausalLM"},
      .gguf_architectures = {"gemma2"},
      .names = &Gemma2Names(),
      .check = &CheckDense,
      .decoder = &Gemma2Decoder,
      .build_layer = &BuildGemma2Layer,
  };
  return family;
}

}  // namespace strata

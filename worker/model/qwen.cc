// Qwen2 / Qwen2.5: Llama's layer with biases on the q/k/v projections (not on o_proj), usually
// a tied head. Qwen3: no biases, and an RMSNorm over each head's q and k (before RoPE); head_dim
// is its own (Qwen3-8B: 128 with hidden 4096 / 32 heads).
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/model/families.h"

namespace strata {
namespace {

absl::StatusOr<std::unique_ptr<DecoderLayer>> BuildQwen2Layer(LayerBuilder& b) {
  AttentionSpec attn = LlamaAttention(b.config);
  attn.qkv_bias = true;
  attn.o_bias = false;
  return BuildBlock(b, PreNormBlock(b.config), attn, LlamaMlp(b.config));
}

const NameTable& Qwen3Names() {
  static const NameTable names = LlamaNames().With({
      {"q_norm", {"model.layers.$0.self_attn.q_norm", "blk.$0.attn_q_norm"}},
      {"k_norm", {"model.layers.$0.self_attn.k_norm", "blk.$0.attn_k_norm"}},
  });
  return names;
}

absl::StatusOr<std::unique_ptr<DecoderLayer>> BuildQwen3Layer(LayerBuilder& b) {
  AttentionSpec attn = LlamaAttention(b.config);
  attn.qk_norm = AttentionSpec::QkNorm::kPerHead;
  attn.qk_norm_spec = RmsNormSpec(b.config);
  return BuildBlock(b, PreNormBlock(b.config), attn, LlamaMlp(b.config));
}

}  // namespace

const Family& Qwen2Family() {
  static const Family family = {
      .name = "qwen2",
      .architectures = {"Qwen2ForCausalLM"},
      .gguf_architectures = {"qwen2"},
      .names = &LlamaNames(),
      .check = &CheckDense,
      .decoder = &LlamaDecoder,
      .build_layer = &BuildQwen2Layer,
  };
  return family;
}

const Family& Qwen3Family() {
  static const Family family = {
      .name = "qwen3",
      .architectures = {"Qwen3ForCausalLM"},
      .gguf_architectures = {"qwen3"},
      .names = &Qwen3Names(),
      .check = &CheckDense,
      .decoder = &LlamaDecoder,
      .build_layer = &BuildQwen3Layer,
  };
  return family;
}

}  // namespace strata

// ModelConfig: the architecture of a decoder-only model, read from a Hugging Face
// `config.json` or from GGUF metadata, validated once so that model code can trust it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/rope_layout.h"

namespace strata {

class GgufFile;

enum class RopeScalingType {
  kNone,
  kLinear,    // positions divided by `factor`
  kLlama3,    // Llama 3.1 frequency-dependent scaling
  kYarn,      // YaRN (Qwen, DeepSeek): interpolation ramp and an attention factor
  kLongRope,  // LongRoPE (Phi-3 128k): per-dimension short / long factors
};

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;                   // llama3
  double high_freq_factor = 4.0;                  // llama3
  int64_t original_max_position_embeddings = 0;   // llama3, yarn, longrope
  double beta_fast = 32.0;                        // yarn
  double beta_slow = 1.0;                         // yarn
  double mscale = 0.0;                            // yarn (DeepSeek)
  double mscale_all_dim = 0.0;                    // yarn (DeepSeek)
  double attention_factor = 0.0;                  // yarn, longrope: 0 = derived from factor
  std::vector<double> short_factor;               // longrope: [rotary_dim / 2]
  std::vector<double> long_factor;                // longrope: [rotary_dim / 2]
};


// Mixture-of-experts MLP (Mixtral, Qwen-MoE, DeepSeek). num_experts == 0: dense model.
struct MoeConfig {
  int64_t num_experts = 0;               // routed experts per MoE layer
  int64_t experts_per_token = 0;         // top-k
  int64_t expert_intermediate_size = 0;  // FFN width of one expert
  int64_t num_shared_experts = 0;        // always-on experts (DeepSeek)
  int64_t first_dense_layers = 0;        // leading layers with a dense MLP (DeepSeek)
  // Routing (DeepSeek): weights renormalised over the chosen experts, or scaled by
  // routed_scaling_factor; experts in num_groups groups of which a token uses topk_groups;
  // scores by softmax (V2) or sigmoid (V3).
  bool norm_topk_prob = true;
  double routed_scaling_factor = 1.0;
  int64_t num_groups = 1;
  int64_t topk_groups = 1;
  bool sigmoid_scoring = false;

  // Width of the always-on shared-expert MLP (DeepSeek: the shared experts fused into one).
  int64_t shared_intermediate_size() const { return num_shared_experts * expert_intermediate_size; }
};

// Multi-head latent attention (DeepSeek-V2): keys and values come from a compressed latent of
// kv_lora_rank values per token (which is what the KV cache holds, with the rotary key part).
struct MlaConfig {
  int64_t q_lora_rank = 0;   // 0: queries projected directly from the hidden state
  int64_t kv_lora_rank = 0;  // 0: not MLA
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
};

// Weight quantization declared by `quantization_config`.
enum class QuantMethod { kNone, kFp8, kAwq, kGptq };

struct QuantConfig {
  QuantMethod method = QuantMethod::kNone;
  int64_t bits = 16;        // awq / gptq: weight bits
  int64_t group_size = 0;   // awq / gptq: values sharing one scale
  bool lm_head_quantized = false;
};

struct ModelConfig {
  std::string architecture;  // Hugging Face `architectures[0]`, e.g. "LlamaForCausalLM"
  std::string model_type;    // e.g. "llama"

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_heads unless the config says otherwise
  int64_t rotary_dim = 0;  // dims of each head RoPE rotates (partial rotary); 0 = head_dim
  int64_t max_position_embeddings = 0;

  double rms_norm_eps = 1e-6;  // the norm epsilon (LayerNorm's for LayerNorm families)
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  RopeLayout rope_layout = RopeLayout::kHalfSplit;

  bool tie_word_embeddings = false;
  bool attention_bias = false;
  bool mlp_bias = false;

  int32_t bos_token_id = -1;           // -1 when the model has none
  std::vector<int32_t> eos_token_ids;  // config.json allows an int or a list

  std::string torch_dtype;  // the dtype the checkpoint was saved in ("bfloat16", ...)
  int64_t sliding_window = 0;  // 0: full attention

  // The MLP's activation as config.json names it ("silu", "gelu", "gelu_new",
  // "gelu_pytorch_tanh").
  std::string hidden_act = "silu";
  // Gemma 2: tanh soft-capping of attention scores and of the final logits (0: off), and the
  // attention scale query_pre_attn_scalar^-1/2 (0: head_dim^-1/2).
  double attn_logit_softcap = 0.0;
  double final_logit_softcap = 0.0;
  double query_pre_attn_scalar = 0.0;

  MlaConfig mla;

  // Features the checkpoint asks for that Strata does not implement (e.g. "alibi"): such a
  // config still plans, but loading refuses it, naming them.
  std::vector<std::string> unsupported;
  MoeConfig moe;
  QuantConfig quant;

  bool IsMoe() const { return moe.num_experts > 0; }
  bool IsMla() const { return mla.kv_lora_rank > 0; }
  // Bytes of one unquantized parameter as saved (torch_dtype; 2 when unknown).
  int64_t ParamBytes() const;

  // Number of query heads per KV head.
  int64_t GqaGroup() const { return num_heads / num_kv_heads; }

  // Checks sizes and their relations; the message names `source` and the offending field.
  absl::Status Validate(const std::string& source) const;
};

// Parses the text of a Hugging Face config.json. `source` names it in errors.
absl::StatusOr<ModelConfig> ParseHfConfig(std::string_view json_text, const std::string& source);

// Reads `dir/config.json` and, when present, fills BOS/EOS gaps from
// `dir/generation_config.json`.
absl::StatusOr<ModelConfig> LoadHfConfig(const std::string& dir);

// Builds the config from GGUF metadata (`general.architecture` and its `<arch>.*` keys) and
// the tensor shapes where metadata is silent (vocab size, tied embeddings).
absl::StatusOr<ModelConfig> ConfigFromGguf(const GgufFile& gguf);

// Loads the config of a model path: a Hugging Face directory or a `.gguf` file.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path);

// RoPE tables as transformers computes them (fp32): inverse frequencies of the rotary_dim / 2
// pairs, theta^(-2i/d) adjusted by the rope scaling, and the factor cos/sin are scaled by.
// LongRoPE has a second table for sequences longer than its original context.
struct RopeFrequencies {
  int64_t rotary_dim = 0;
  std::vector<float> inv_freq;
  float mscale = 1.0f;
  std::vector<float> long_inv_freq;  // longrope
  int64_t long_threshold = 0;        // longrope: contexts longer than this use long_inv_freq
};
absl::StatusOr<RopeFrequencies> ComputeRopeFrequencies(const ModelConfig& config);

// The rotary dims of a head.
inline int64_t RotaryDim(const ModelConfig& c) { return c.rotary_dim > 0 ? c.rotary_dim : c.head_dim; }

}  // namespace strata

// ModelConfig: the architecture of a decoder-only model, read from a Hugging Face
// `config.json` or from GGUF metadata, validated once so that model code can trust it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace strata {

class GgufFile;

enum class RopeScalingType {
  kNone,
  kLinear,  // positions divided by `factor`
  kLlama3,  // Llama 3.1 frequency-dependent scaling
};

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;                   // llama3
  double high_freq_factor = 4.0;                  // llama3
  int64_t original_max_position_embeddings = 0;   // llama3
};

// Which pairs of dimensions RoPE rotates. Hugging Face checkpoints pair (i, i + d/2); GGUF
// `llama` checkpoints have q/k rows permuted by the converter and pair (2i, 2i + 1).
enum class RopeLayout { kHalfSplit, kInterleaved };

// Mixture-of-experts MLP (Mixtral, Qwen-MoE, DeepSeek). num_experts == 0: dense model.
struct MoeConfig {
  int64_t num_experts = 0;               // routed experts per MoE layer
  int64_t experts_per_token = 0;         // top-k
  int64_t expert_intermediate_size = 0;  // FFN width of one expert
  int64_t num_shared_experts = 0;        // always-on experts (DeepSeek)
  int64_t first_dense_layers = 0;        // leading layers with a dense MLP (DeepSeek)
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
  int64_t max_position_embeddings = 0;

  double rms_norm_eps = 1e-6;
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

  MoeConfig moe;
  QuantConfig quant;

  bool IsMoe() const { return moe.num_experts > 0; }
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

// RoPE inverse frequencies for the first `rotary_dim` dims: inv_freq[i] = theta^(-2i/d),
// then adjusted by the config's rope scaling. Computed in fp32 as transformers does.
std::vector<float> RopeInvFreq(const ModelConfig& config);

}  // namespace strata

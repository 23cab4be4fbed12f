// ModelConfig from GGUF metadata: `general.architecture` picks the family and its `<arch>.*`
// keys (llama.cpp's names) give the sizes; tensor shapes fill what metadata leaves out.
#include "absl/strings/str_cat.h"
#include "common/formats/gguf.h"
#include "common/model_config.h"
#include "common/status.h"
#include "common/strings.h"

namespace strata {
namespace {

// GGUF `general.architecture` -> the Hugging Face architecture (the model registry's key), the
// RoPE pair layout llama.cpp's converter leaves (it permutes q/k rows to interleaved pairs for
// `llama` only; DeepSeek's are interleaved in both formats), the norm and the MLP activation.
struct GgufArch {
  std::string_view gguf;
  std::string_view hf;
  std::string_view model_type;
  RopeLayout rope_layout;
  bool layer_norm;  // LayerNorm (epsilon key attention.layer_norm_epsilon), else RMSNorm
  std::string_view hidden_act;
};
constexpr GgufArch kGgufArchs[] = {
    {"llama", "LlamaForCausalLM", "llama", RopeLayout::kInterleaved, false, "silu"},
    {"qwen2", "Qwen2ForCausalLM", "qwen2", RopeLayout::kHalfSplit, false, "silu"},
    {"qwen3", "Qwen3ForCausalLM", "qwen3", RopeLayout::kHalfSplit, false, "silu"},
    {"phi3", "Phi3ForCausalLM", "phi3", RopeLayout::kHalfSplit, false, "silu"},
    {"phi2", "PhiForCausalLM", "phi", RopeLayout::kHalfSplit, true, "gelu_new"},
    {"gemma2", "Gemma2ForCausalLM", "gemma2", RopeLayout::kHalfSplit, false, "gelu_pytorch_tanh"},
    {"olmo2", "Olmo2ForCausalLM", "olmo2", RopeLayout::kHalfSplit, false, "silu"},
    {"falcon", "FalconForCausalLM", "falcon", RopeLayout::kHalfSplit, true, "gelu"},
    {"deepseek2", "DeepseekV2ForCausalLM", "deepseek_v2", RopeLayout::kInterleaved, false, "silu"},
};

std::string SupportedArchs() {
  std::string out;
  for (const GgufArch& a : kGgufArchs) absl::StrAppend(&out, out.empty() ? "" : ", ", Sv(a.gguf));
  return out;
}

}  // namespace

absl::StatusOr<ModelConfig> ConfigFromGguf(const GgufFile& gguf) {
  const std::string& source = gguf.path();
  STRATA_ASSIGN_OR_RETURN(std::optional<std::string> arch, gguf.GetString("general.architecture"));
  if (!arch) return absl::InvalidArgumentError(absl::StrCat(source, ": missing general.architecture"));
  ModelConfig c;
  const GgufArch* family = nullptr;
  for (const GgufArch& a : kGgufArchs) {
    if (a.gguf == *arch) family = &a;
  }
  if (family == nullptr) {
    return absl::UnimplementedError(absl::StrCat(source, ": GGUF architecture '", *arch,
                                                 "' is not supported (supported: ",
                                                 SupportedArchs(), ")"));
  }
  c.architecture = std::string(family->hf);
  c.model_type = std::string(family->model_type);
  c.rope_layout = family->rope_layout;
  c.hidden_act = std::string(family->hidden_act);
  const std::string p = *arch + ".";
  auto get_int = [&](const std::string& key, int64_t* out, bool required) -> absl::Status {
    STRATA_ASSIGN_OR_RETURN(std::optional<int64_t> v, gguf.GetInt(key));
    if (v) {
      *out = *v;
    } else if (required) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": missing metadata key ", key));
    }
    return absl::OkStatus();
  };
  auto get_float = [&](const std::string& key, double* out) -> absl::Status {
    STRATA_ASSIGN_OR_RETURN(std::optional<double> v, gguf.GetFloat(key));
    if (v) *out = *v;
    return absl::OkStatus();
  };
  STRATA_RETURN_IF_ERROR(get_int(p + "embedding_length", &c.hidden_size, true));
  STRATA_RETURN_IF_ERROR(get_int(p + "feed_forward_length", &c.intermediate_size, true));
  STRATA_RETURN_IF_ERROR(get_int(p + "block_count", &c.num_layers, true));
  STRATA_RETURN_IF_ERROR(get_int(p + "attention.head_count", &c.num_heads, true));
  c.num_kv_heads = c.num_heads;
  STRATA_RETURN_IF_ERROR(get_int(p + "attention.head_count_kv", &c.num_kv_heads, false));
  if (c.num_heads > 0) c.head_dim = c.hidden_size / c.num_heads;
  STRATA_RETURN_IF_ERROR(get_int(p + "attention.key_length", &c.head_dim, false));
  c.max_position_embeddings = 2048;
  STRATA_RETURN_IF_ERROR(get_int(p + "context_length", &c.max_position_embeddings, false));
  STRATA_RETURN_IF_ERROR(get_float(
      p + (family->layer_norm ? "attention.layer_norm_epsilon" : "attention.layer_norm_rms_epsilon"),
      &c.rms_norm_eps));
  int64_t rotary = 0;
  STRATA_RETURN_IF_ERROR(get_int(p + "rope.dimension_count", &rotary, false));
  STRATA_RETURN_IF_ERROR(get_float(p + "rope.freq_base", &c.rope_theta));
  STRATA_RETURN_IF_ERROR(get_int(p + "attention.sliding_window", &c.sliding_window, false));

  STRATA_ASSIGN_OR_RETURN(std::optional<std::string> scaling, gguf.GetString(p + "rope.scaling.type"));
  if (scaling && *scaling == "linear") {
    c.rope_scaling.type = RopeScalingType::kLinear;
    STRATA_RETURN_IF_ERROR(get_float(p + "rope.scaling.factor", &c.rope_scaling.factor));
  } else if (scaling && *scaling != "none") {
    return absl::UnimplementedError(
        absl::StrCat(source, ": rope scaling '", *scaling, "' is not supported (supported: linear)"));
  }
  // Llama 3 frequency scaling travels as the `rope_freqs.weight` tensor, read by the model.

  STRATA_RETURN_IF_ERROR(get_float(p + "attn_logit_softcapping", &c.attn_logit_softcap));
  STRATA_RETURN_IF_ERROR(get_float(p + "final_logit_softcapping", &c.final_logit_softcap));
  if (*arch == "gemma2") c.query_pre_attn_scalar = static_cast<double>(c.head_dim);
  if (*arch == "deepseek2") {
    // key_length is a query head (no-RoPE part + RoPE part), value_length a value head.
    MlaConfig& m = c.mla;
    STRATA_RETURN_IF_ERROR(get_int(p + "attention.q_lora_rank", &m.q_lora_rank, false));
    STRATA_RETURN_IF_ERROR(get_int(p + "attention.kv_lora_rank", &m.kv_lora_rank, true));
    STRATA_RETURN_IF_ERROR(get_int(p + "attention.value_length", &m.v_head_dim, true));
    m.qk_rope_head_dim = rotary;
    m.qk_nope_head_dim = c.head_dim - rotary;
    STRATA_RETURN_IF_ERROR(get_int(p + "leading_dense_block_count", &c.moe.first_dense_layers, false));
    STRATA_RETURN_IF_ERROR(get_int(p + "expert_shared_count", &c.moe.num_shared_experts, false));
    STRATA_RETURN_IF_ERROR(get_float(p + "expert_weights_scale", &c.moe.routed_scaling_factor));
    STRATA_ASSIGN_OR_RETURN(std::optional<bool> norm, gguf.GetBool(p + "expert_weights_norm"));
    c.moe.norm_topk_prob = norm.value_or(false);
    int64_t gating = 1;  // llama.cpp: 1 softmax, 2 sigmoid
    STRATA_RETURN_IF_ERROR(get_int(p + "expert_gating_func", &gating, false));
    if (gating != 1) c.unsupported.push_back("expert_gating_func " + std::to_string(gating));
    STRATA_RETURN_IF_ERROR(get_int(p + "expert_group_count", &c.moe.num_groups, false));
    STRATA_RETURN_IF_ERROR(get_int(p + "expert_group_used_count", &c.moe.topk_groups, false));
  }
  if (rotary > 0 && rotary != c.head_dim) c.rotary_dim = rotary;

  // Mixture of experts (`llama` with experts is Mixtral).
  STRATA_RETURN_IF_ERROR(get_int(p + "expert_count", &c.moe.num_experts, false));
  STRATA_RETURN_IF_ERROR(get_int(p + "expert_used_count", &c.moe.experts_per_token, false));
  if (c.IsMoe()) {
    c.moe.expert_intermediate_size = c.intermediate_size;
    STRATA_RETURN_IF_ERROR(
        get_int(p + "expert_feed_forward_length", &c.moe.expert_intermediate_size, false));
    if (c.architecture == "LlamaForCausalLM") {
      c.architecture = "MixtralForCausalLM";
      c.model_type = "mixtral";
    }
    if (c.moe.experts_per_token <= 0 || c.moe.experts_per_token > c.moe.num_experts) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": ", p, "expert_used_count must be between 1 and the ", c.moe.num_experts,
          " experts"));
    }
  }

  // Vocabulary: explicit key, else the token list, else the embedding's rows.
  STRATA_RETURN_IF_ERROR(get_int(p + "vocab_size", &c.vocab_size, false));
  if (c.vocab_size == 0) {
    STRATA_ASSIGN_OR_RETURN(auto tokens, gguf.GetStringArray("tokenizer.ggml.tokens"));
    if (tokens) c.vocab_size = static_cast<int64_t>(tokens->size());
  }
  if (c.vocab_size == 0 && gguf.Has("token_embd.weight")) {
    STRATA_ASSIGN_OR_RETURN(TensorView emb, gguf.Get("token_embd.weight"));
    c.vocab_size = emb.shape.front();
  }
  c.tie_word_embeddings = !gguf.Has("output.weight");
  int64_t bos = -1;
  STRATA_RETURN_IF_ERROR(get_int("tokenizer.ggml.bos_token_id", &bos, false));
  c.bos_token_id = static_cast<int32_t>(bos);
  int64_t eos = -1;
  STRATA_RETURN_IF_ERROR(get_int("tokenizer.ggml.eos_token_id", &eos, false));
  if (eos >= 0) c.eos_token_ids = {static_cast<int32_t>(eos)};
  // GGUF has no torch_dtype: report the embedding's storage type (block-quantized types stay
  // unnamed). The planner sizes a GGUF model by its tensors' own types.
  if (auto q = gguf.Get("token_embd.weight"); q.ok()) {
    if (q->dtype == DType::kF32) c.torch_dtype = "float32";
    if (q->dtype == DType::kF16) c.torch_dtype = "float16";
    if (q->dtype == DType::kBF16) c.torch_dtype = "bfloat16";
  }
  STRATA_RETURN_IF_ERROR(c.Validate(source));
  return c;
}

}  // namespace strata

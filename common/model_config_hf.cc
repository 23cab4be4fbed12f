// ModelConfig from a Hugging Face config.json: the keys every family shares, then the ones of
// each model_type (with transformers' defaults for what a family's config leaves out).
#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "common/json.h"
#include "common/model_config.h"
#include "common/status.h"

namespace strata {
namespace json = boost::json;
namespace {

// Typed reads of optional config.json fields; a present field of the wrong type is an error
// that names the field.
class JsonFields {
 public:
  JsonFields(const json::object& obj, const std::string& source) : obj_(obj), source_(source) {}

  absl::Status Int(std::string_view key, int64_t* out) const {
    const json::value* v = obj_.if_contains(key);
    if (v == nullptr || v->is_null()) return absl::OkStatus();
    if (v->is_int64()) {
      *out = v->as_int64();
    } else if (v->is_uint64() && v->as_uint64() <= INT64_MAX) {
      *out = static_cast<int64_t>(v->as_uint64());
    } else if (v->is_double() && v->as_double() == std::floor(v->as_double()) &&
               std::abs(v->as_double()) < 0x1p63) {  // 131E072 is integral, but no int64
      *out = static_cast<int64_t>(v->as_double());
    } else {
      return Error(key, "an integer");
    }
    return absl::OkStatus();
  }

  absl::Status Double(std::string_view key, double* out) const {
    const json::value* v = obj_.if_contains(key);
    if (v == nullptr || v->is_null()) return absl::OkStatus();
    if (v->is_double()) {
      *out = v->as_double();
    } else if (v->is_int64()) {
      *out = static_cast<double>(v->as_int64());
    } else if (v->is_uint64()) {
      *out = static_cast<double>(v->as_uint64());
    } else {
      return Error(key, "a number");
    }
    return absl::OkStatus();
  }

  absl::Status Bool(std::string_view key, bool* out) const {
    const json::value* v = obj_.if_contains(key);
    if (v == nullptr || v->is_null()) return absl::OkStatus();
    if (!v->is_bool()) return Error(key, "true or false");
    *out = v->as_bool();
    return absl::OkStatus();
  }

  absl::Status String(std::string_view key, std::string* out) const {
    const json::value* v = obj_.if_contains(key);
    if (v == nullptr || v->is_null()) return absl::OkStatus();
    if (!v->is_string()) return Error(key, "a string");
    *out = std::string(v->as_string());
    return absl::OkStatus();
  }

  // An int or a list of ints (eos_token_id).
  absl::Status IntList(std::string_view key, std::vector<int32_t>* out) const {
    const json::value* v = obj_.if_contains(key);
    if (v == nullptr || v->is_null()) return absl::OkStatus();
    auto to_id = [&](const json::value& e, int32_t* id) -> bool {
      if (!e.is_int64() || e.as_int64() < 0 || e.as_int64() > INT32_MAX) return false;
      *id = static_cast<int32_t>(e.as_int64());
      return true;
    };
    std::vector<int32_t> ids;
    if (v->is_array()) {
      for (const json::value& e : v->as_array()) {
        int32_t id;
        if (!to_id(e, &id)) return Error(key, "a token id or a list of token ids");
        ids.push_back(id);
      }
    } else {
      int32_t id;
      if (!to_id(*v, &id)) return Error(key, "a token id or a list of token ids");
      ids.push_back(id);
    }
    *out = std::move(ids);
    return absl::OkStatus();
  }

  absl::Status DoubleList(std::string_view key, std::vector<double>* out) const {
    const json::value* v = obj_.if_contains(key);
    if (v == nullptr || v->is_null()) return absl::OkStatus();
    if (!v->is_array()) return Error(key, "a list of numbers");
    out->clear();
    for (const json::value& e : v->as_array()) {
      if (!e.is_number()) return Error(key, "a list of numbers");
      out->push_back(e.to_number<double>());
    }
    return absl::OkStatus();
  }

  const json::object* Object(std::string_view key) const {
    const json::value* v = obj_.if_contains(key);
    return v != nullptr && v->is_object() ? &v->as_object() : nullptr;
  }

  absl::Status Error(std::string_view key, std::string_view expected) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": field '", std::string(key), "' must be ", std::string(expected)));
  }

 private:
  const json::object& obj_;
  const std::string& source_;
};

absl::Status ParseRopeScaling(const JsonFields& fields, const std::string& source,
                              ModelConfig& config) {
  const json::object* rs = fields.Object("rope_scaling");
  if (rs == nullptr) return absl::OkStatus();
  JsonFields f(*rs, source);
  std::string type;
  STRATA_RETURN_IF_ERROR(f.String("rope_type", &type));
  if (type.empty()) STRATA_RETURN_IF_ERROR(f.String("type", &type));
  RopeScaling& s = config.rope_scaling;
  STRATA_RETURN_IF_ERROR(f.Double("factor", &s.factor));
  if (type == "default") {
    s.type = RopeScalingType::kNone;
  } else if (type == "linear") {
    s.type = RopeScalingType::kLinear;
  } else if (type == "llama3") {
    s.type = RopeScalingType::kLlama3;
    STRATA_RETURN_IF_ERROR(f.Double("low_freq_factor", &s.low_freq_factor));
    STRATA_RETURN_IF_ERROR(f.Double("high_freq_factor", &s.high_freq_factor));
    STRATA_RETURN_IF_ERROR(
        f.Int("original_max_position_embeddings", &s.original_max_position_embeddings));
  } else if (type == "yarn") {
    s.type = RopeScalingType::kYarn;
    STRATA_RETURN_IF_ERROR(
        f.Int("original_max_position_embeddings", &s.original_max_position_embeddings));
    STRATA_RETURN_IF_ERROR(f.Double("beta_fast", &s.beta_fast));
    STRATA_RETURN_IF_ERROR(f.Double("beta_slow", &s.beta_slow));
    STRATA_RETURN_IF_ERROR(f.Double("mscale", &s.mscale));
    STRATA_RETURN_IF_ERROR(f.Double("mscale_all_dim", &s.mscale_all_dim));
    STRATA_RETURN_IF_ERROR(f.Double("attention_factor", &s.attention_factor));
  } else if (type == "longrope" || type == "su") {
    s.type = RopeScalingType::kLongRope;
    STRATA_RETURN_IF_ERROR(f.DoubleList("short_factor", &s.short_factor));
    STRATA_RETURN_IF_ERROR(f.DoubleList("long_factor", &s.long_factor));
    STRATA_RETURN_IF_ERROR(f.Double("attention_factor", &s.attention_factor));
    // Phi-3 keeps original_max_position_embeddings at the top level of config.json.
    STRATA_RETURN_IF_ERROR(
        f.Int("original_max_position_embeddings", &s.original_max_position_embeddings));
    if (s.original_max_position_embeddings == 0) {
      STRATA_RETURN_IF_ERROR(
          fields.Int("original_max_position_embeddings", &s.original_max_position_embeddings));
    }
  } else {
    return absl::UnimplementedError(absl::StrCat(
        source, ": rope_scaling type '", type,
        "' is not supported (supported: linear, llama3, yarn, longrope)"));
  }
  return absl::OkStatus();
}

absl::Status ParseMoe(const JsonFields& f, ModelConfig& c) {
  MoeConfig& m = c.moe;
  STRATA_RETURN_IF_ERROR(f.Int("num_local_experts", &m.num_experts));  // Mixtral
  STRATA_RETURN_IF_ERROR(f.Int("num_experts", &m.num_experts));        // Qwen MoE
  STRATA_RETURN_IF_ERROR(f.Int("n_routed_experts", &m.num_experts));   // DeepSeek
  STRATA_RETURN_IF_ERROR(f.Int("num_experts_per_tok", &m.experts_per_token));
  m.expert_intermediate_size = c.intermediate_size;
  STRATA_RETURN_IF_ERROR(f.Int("moe_intermediate_size", &m.expert_intermediate_size));
  STRATA_RETURN_IF_ERROR(f.Int("n_shared_experts", &m.num_shared_experts));
  STRATA_RETURN_IF_ERROR(f.Int("first_k_dense_replace", &m.first_dense_layers));
  if (m.num_experts > 0 && (m.experts_per_token <= 0 || m.experts_per_token > m.num_experts ||
                            m.expert_intermediate_size <= 0)) {
    return f.Error("num_experts_per_tok", "between 1 and the number of experts");
  }
  return absl::OkStatus();
}

absl::Status ParseQuantization(const JsonFields& fields, const std::string& source,
                               ModelConfig& c) {
  const json::object* q = fields.Object("quantization_config");
  if (q == nullptr) return absl::OkStatus();
  JsonFields f(*q, source);
  std::string method;
  STRATA_RETURN_IF_ERROR(f.String("quant_method", &method));
  QuantConfig& quant = c.quant;
  if (method == "fp8" || method == "fbgemm_fp8") {
    quant.method = QuantMethod::kFp8;
    quant.bits = 8;
  } else if (method == "awq" || method == "gptq") {
    quant.method = method == "awq" ? QuantMethod::kAwq : QuantMethod::kGptq;
    STRATA_RETURN_IF_ERROR(f.Int("bits", &quant.bits));
    STRATA_RETURN_IF_ERROR(f.Int("group_size", &quant.group_size));
    if (quant.bits != 4 && quant.bits != 8) return f.Error("bits", "4 or 8");
    if (quant.group_size <= 0) quant.group_size = c.hidden_size;  // per channel
  } else {
    return absl::UnimplementedError(absl::StrCat(
        source, ": quantization method '", method, "' is not supported (supported: fp8, awq, gptq)"));
  }
  return absl::OkStatus();
}

// The keys only some families write, and transformers' defaults for the ones their configs
// leave out.
absl::Status ParseFamilyKeys(const JsonFields& f, ModelConfig& c) {
  const std::string& t = c.model_type;
  if (t == "falcon") {
    // FalconConfig: n_head / n_layer aliases, a 4x MLP, one KV head with multi_query, a tied
    // head, LayerNorm epsilon; the 40B/180B layout and ALiBi are other models.
    if (c.num_heads == 0) STRATA_RETURN_IF_ERROR(f.Int("n_head", &c.num_heads));
    if (c.num_layers == 0) STRATA_RETURN_IF_ERROR(f.Int("n_layer", &c.num_layers));
    c.intermediate_size = 4 * c.hidden_size;
    STRATA_RETURN_IF_ERROR(f.Int("ffn_hidden_size", &c.intermediate_size));
    bool multi_query = true, new_arch = false, alibi = false, parallel = true, bias = false;
    STRATA_RETURN_IF_ERROR(f.Bool("multi_query", &multi_query));
    STRATA_RETURN_IF_ERROR(f.Bool("new_decoder_architecture", &new_arch));
    STRATA_RETURN_IF_ERROR(f.Bool("alibi", &alibi));
    STRATA_RETURN_IF_ERROR(f.Bool("parallel_attn", &parallel));
    STRATA_RETURN_IF_ERROR(f.Bool("bias", &bias));
    c.num_kv_heads = multi_query ? 1 : c.num_heads;
    if (new_arch) c.unsupported.push_back("new_decoder_architecture (Falcon-40B/180B layout)");
    if (alibi) c.unsupported.push_back("alibi");
    if (!parallel) c.unsupported.push_back("parallel_attn = false");
    if (bias) c.unsupported.push_back("linear biases (bias = true)");
    c.tie_word_embeddings = true;
    c.hidden_act = "gelu";
    STRATA_RETURN_IF_ERROR(f.Double("layer_norm_epsilon", &c.rms_norm_eps));
  } else if (t == "phi") {
    STRATA_RETURN_IF_ERROR(f.Double("layer_norm_eps", &c.rms_norm_eps));
    bool qk_layernorm = false;
    STRATA_RETURN_IF_ERROR(f.Bool("qk_layernorm", &qk_layernorm));
    if (qk_layernorm) c.unsupported.push_back("qk_layernorm");
    c.hidden_act = "gelu_new";
  } else if (t == "gemma2") {
    c.tie_word_embeddings = true;
    c.hidden_act = "gelu_pytorch_tanh";
    STRATA_RETURN_IF_ERROR(f.Double("attn_logit_softcapping", &c.attn_logit_softcap));
    STRATA_RETURN_IF_ERROR(f.Double("final_logit_softcapping", &c.final_logit_softcap));
    STRATA_RETURN_IF_ERROR(f.Double("query_pre_attn_scalar", &c.query_pre_attn_scalar));
  } else if (t == "deepseek_v2") {
    MlaConfig& m = c.mla;
    STRATA_RETURN_IF_ERROR(f.Int("q_lora_rank", &m.q_lora_rank));
    STRATA_RETURN_IF_ERROR(f.Int("kv_lora_rank", &m.kv_lora_rank));
    STRATA_RETURN_IF_ERROR(f.Int("qk_nope_head_dim", &m.qk_nope_head_dim));
    STRATA_RETURN_IF_ERROR(f.Int("qk_rope_head_dim", &m.qk_rope_head_dim));
    STRATA_RETURN_IF_ERROR(f.Int("v_head_dim", &m.v_head_dim));
    if (m.kv_lora_rank <= 0 || m.qk_nope_head_dim <= 0 || m.qk_rope_head_dim <= 0 ||
        m.v_head_dim <= 0) {
      return f.Error("kv_lora_rank", "positive, with positive qk_nope_head_dim, qk_rope_head_dim "
                                     "and v_head_dim");
    }
    // A query head is its no-RoPE part then its RoPE part; RoPE pairs are interleaved.
    c.head_dim = m.qk_nope_head_dim + m.qk_rope_head_dim;
    c.rotary_dim = m.qk_rope_head_dim;
    c.rope_layout = RopeLayout::kInterleaved;
    MoeConfig& e = c.moe;
    STRATA_RETURN_IF_ERROR(f.Bool("norm_topk_prob", &e.norm_topk_prob));
    STRATA_RETURN_IF_ERROR(f.Double("routed_scaling_factor", &e.routed_scaling_factor));
    STRATA_RETURN_IF_ERROR(f.Int("n_group", &e.num_groups));
    STRATA_RETURN_IF_ERROR(f.Int("topk_group", &e.topk_groups));
    std::string scoring = "softmax", method = "greedy";
    STRATA_RETURN_IF_ERROR(f.String("scoring_func", &scoring));
    STRATA_RETURN_IF_ERROR(f.String("topk_method", &method));
    if (scoring != "softmax") c.unsupported.push_back("scoring_func " + scoring);
    if (method != "greedy" && method != "group_limited_greedy") {
      c.unsupported.push_back("topk_method " + method);
    }
    if (method == "greedy") e.num_groups = e.topk_groups = 1;
    int64_t freq = 1;
    STRATA_RETURN_IF_ERROR(f.Int("moe_layer_freq", &freq));
    if (freq != 1) c.unsupported.push_back("moe_layer_freq " + std::to_string(freq));
  }
  STRATA_RETURN_IF_ERROR(f.String("hidden_act", &c.hidden_act));
  if (t == "gemma2") STRATA_RETURN_IF_ERROR(f.String("hidden_activation", &c.hidden_act));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ParseHfConfig(std::string_view json_text, const std::string& source) {
  STRATA_ASSIGN_OR_RETURN(const json::object obj, ParseJsonObject(source, "config", json_text));
  JsonFields f(obj, source);
  ModelConfig c;
  if (const json::value* a = obj.if_contains("architectures"); a != nullptr) {
    if (!a->is_array() || a->as_array().empty() || !a->as_array()[0].is_string()) {
      return f.Error("architectures", "a non-empty list of strings");
    }
    c.architecture = std::string(a->as_array()[0].as_string());
  }
  STRATA_RETURN_IF_ERROR(f.String("model_type", &c.model_type));
  STRATA_RETURN_IF_ERROR(f.Int("vocab_size", &c.vocab_size));
  STRATA_RETURN_IF_ERROR(f.Int("hidden_size", &c.hidden_size));
  STRATA_RETURN_IF_ERROR(f.Int("intermediate_size", &c.intermediate_size));
  STRATA_RETURN_IF_ERROR(f.Int("num_hidden_layers", &c.num_layers));
  STRATA_RETURN_IF_ERROR(f.Int("num_attention_heads", &c.num_heads));
  STRATA_RETURN_IF_ERROR(f.Int("max_position_embeddings", &c.max_position_embeddings));
  STRATA_RETURN_IF_ERROR(f.Double("rms_norm_eps", &c.rms_norm_eps));
  STRATA_RETURN_IF_ERROR(f.Double("rope_theta", &c.rope_theta));
  STRATA_RETURN_IF_ERROR(f.Bool("attention_bias", &c.attention_bias));
  STRATA_RETURN_IF_ERROR(f.Bool("mlp_bias", &c.mlp_bias));
  STRATA_RETURN_IF_ERROR(f.String("torch_dtype", &c.torch_dtype));
  STRATA_RETURN_IF_ERROR(ParseMoe(f, c));
  STRATA_RETURN_IF_ERROR(ParseFamilyKeys(f, c));
  // Sizes a family may have set or derived: the explicit keys win.
  if (c.num_kv_heads == 0) c.num_kv_heads = c.num_heads;
  STRATA_RETURN_IF_ERROR(f.Int("num_key_value_heads", &c.num_kv_heads));
  if (c.head_dim == 0 && c.num_heads > 0) c.head_dim = c.hidden_size / c.num_heads;
  if (!c.IsMla()) STRATA_RETURN_IF_ERROR(f.Int("head_dim", &c.head_dim));
  if (c.max_position_embeddings == 0) c.max_position_embeddings = 2048;
  double partial_rotary = 1.0;
  STRATA_RETURN_IF_ERROR(f.Double("partial_rotary_factor", &partial_rotary));
  if (partial_rotary != 1.0) c.rotary_dim = static_cast<int64_t>(c.head_dim * partial_rotary);
  STRATA_RETURN_IF_ERROR(ParseRopeScaling(f, source, c));
  STRATA_RETURN_IF_ERROR(f.Bool("tie_word_embeddings", &c.tie_word_embeddings));
  int64_t bos = -1;
  STRATA_RETURN_IF_ERROR(f.Int("bos_token_id", &bos));
  c.bos_token_id = static_cast<int32_t>(bos);
  STRATA_RETURN_IF_ERROR(f.IntList("eos_token_id", &c.eos_token_ids));
  // Qwen writes sliding_window but disables it (use_sliding_window); when enabled, its window
  // applies only from max_window_layers on, which no family here implements.
  bool use_sliding_window = !c.model_type.starts_with("qwen");
  STRATA_RETURN_IF_ERROR(f.Bool("use_sliding_window", &use_sliding_window));
  if (use_sliding_window) STRATA_RETURN_IF_ERROR(f.Int("sliding_window", &c.sliding_window));
  if (use_sliding_window && c.model_type.starts_with("qwen") && c.sliding_window > 0) {
    c.unsupported.push_back("use_sliding_window (Qwen's per-layer windows)");
  }
  STRATA_RETURN_IF_ERROR(ParseQuantization(f, source, c));
  if (c.architecture.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": field 'architectures' is missing"));
  }
  STRATA_RETURN_IF_ERROR(c.Validate(source));
  return c;
}

absl::StatusOr<ModelConfig> LoadHfConfig(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  STRATA_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path));
  STRATA_ASSIGN_OR_RETURN(ModelConfig config, ParseHfConfig(text, path));
  const std::string gen_path = (std::filesystem::path(dir) / "generation_config.json").string();
  if (std::filesystem::exists(gen_path)) {
    STRATA_ASSIGN_OR_RETURN(const std::string gen_text, ReadFileToString(gen_path));
    STRATA_ASSIGN_OR_RETURN(const json::object gen, ParseJsonObject(gen_path, "generation config", gen_text));
    JsonFields f(gen, gen_path);
    // generation_config.json wins for EOS: chat models list their end-of-turn ids there.
    std::vector<int32_t> eos;
    STRATA_RETURN_IF_ERROR(f.IntList("eos_token_id", &eos));
    if (!eos.empty()) config.eos_token_ids = std::move(eos);
    if (config.bos_token_id < 0) {
      int64_t bos = -1;
      STRATA_RETURN_IF_ERROR(f.Int("bos_token_id", &bos));
      config.bos_token_id = static_cast<int32_t>(bos);
    }
    STRATA_RETURN_IF_ERROR(config.Validate(gen_path));
  }
  return config;
}

}  // namespace strata

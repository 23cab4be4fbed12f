#include "common/model_config.h"

#include <cmath>
#include <filesystem>
#include <algorithm>
#include <fstream>
#include <numbers>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "common/formats/gguf.h"
#include "common/json.h"
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
    } else if (v->is_double() && v->as_double() == std::floor(v->as_double())) {
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

}  // namespace

int64_t ModelConfig::ParamBytes() const {
  if (torch_dtype == "float32") return 4;
  return 2;
}

absl::Status ModelConfig::Validate(const std::string& source) const {
  auto positive = [&](std::string_view name, int64_t v) -> absl::Status {
    if (v > 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", std::string(name), " must be positive, got ", v));
  };
  STRATA_RETURN_IF_ERROR(positive("vocab_size", vocab_size));
  STRATA_RETURN_IF_ERROR(positive("hidden_size", hidden_size));
  STRATA_RETURN_IF_ERROR(positive("intermediate_size", intermediate_size));
  STRATA_RETURN_IF_ERROR(positive("num_hidden_layers", num_layers));
  STRATA_RETURN_IF_ERROR(positive("num_attention_heads", num_heads));
  STRATA_RETURN_IF_ERROR(positive("num_key_value_heads", num_kv_heads));
  STRATA_RETURN_IF_ERROR(positive("head_dim", head_dim));
  STRATA_RETURN_IF_ERROR(positive("max_position_embeddings", max_position_embeddings));
  if (num_heads % num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": num_attention_heads (", num_heads,
        ") must be a multiple of num_key_value_heads (", num_kv_heads, ")"));
  }
  if (head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": head_dim must be even, got ", head_dim));
  }
  if (rotary_dim < 0 || rotary_dim > head_dim || rotary_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": the rotary dims (", rotary_dim, ") must be even and at most head_dim ",
        head_dim));
  }
  if (!(rms_norm_eps > 0) || !(rope_theta > 0) || !(rope_scaling.factor > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": rms_norm_eps, rope_theta and rope_scaling.factor must be positive"));
  }
  if (rope_scaling.type == RopeScalingType::kLlama3 &&
      (rope_scaling.original_max_position_embeddings <= 0 ||
       rope_scaling.high_freq_factor <= rope_scaling.low_freq_factor)) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": llama3 rope_scaling needs original_max_position_embeddings > 0 and "
                "high_freq_factor > low_freq_factor"));
  }
  auto in_vocab = [&](int64_t id) { return id >= 0 && id < vocab_size; };
  if (bos_token_id != -1 && !in_vocab(bos_token_id)) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": bos_token_id ", bos_token_id,
                                                   " outside the vocabulary of ", vocab_size));
  }
  for (int32_t id : eos_token_ids) {
    if (!in_vocab(id)) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": eos_token_id ", id,
                                                     " outside the vocabulary of ", vocab_size));
    }
  }
  return absl::OkStatus();
}

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
  c.num_kv_heads = c.num_heads;
  STRATA_RETURN_IF_ERROR(f.Int("num_key_value_heads", &c.num_kv_heads));
  if (c.num_heads > 0) c.head_dim = c.hidden_size / c.num_heads;
  STRATA_RETURN_IF_ERROR(f.Int("head_dim", &c.head_dim));
  c.max_position_embeddings = 2048;
  STRATA_RETURN_IF_ERROR(f.Int("max_position_embeddings", &c.max_position_embeddings));
  STRATA_RETURN_IF_ERROR(f.Double("rms_norm_eps", &c.rms_norm_eps));
  STRATA_RETURN_IF_ERROR(f.Double("rope_theta", &c.rope_theta));
  double partial_rotary = 1.0;
  STRATA_RETURN_IF_ERROR(f.Double("partial_rotary_factor", &partial_rotary));
  if (partial_rotary != 1.0) c.rotary_dim = static_cast<int64_t>(c.head_dim * partial_rotary);
  STRATA_RETURN_IF_ERROR(ParseRopeScaling(f, source, c));
  STRATA_RETURN_IF_ERROR(f.Bool("tie_word_embeddings", &c.tie_word_embeddings));
  STRATA_RETURN_IF_ERROR(f.Bool("attention_bias", &c.attention_bias));
  STRATA_RETURN_IF_ERROR(f.Bool("mlp_bias", &c.mlp_bias));
  int64_t bos = -1;
  STRATA_RETURN_IF_ERROR(f.Int("bos_token_id", &bos));
  c.bos_token_id = static_cast<int32_t>(bos);
  STRATA_RETURN_IF_ERROR(f.IntList("eos_token_id", &c.eos_token_ids));
  STRATA_RETURN_IF_ERROR(f.String("torch_dtype", &c.torch_dtype));
  bool use_sliding_window = true;  // Qwen2 writes sliding_window but disables it
  STRATA_RETURN_IF_ERROR(f.Bool("use_sliding_window", &use_sliding_window));
  if (use_sliding_window) STRATA_RETURN_IF_ERROR(f.Int("sliding_window", &c.sliding_window));
  STRATA_RETURN_IF_ERROR(ParseMoe(f, c));
  STRATA_RETURN_IF_ERROR(ParseQuantization(f, source, c));
  if (c.architecture.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": field 'architectures' is missing"));
  }
  c.rope_layout = RopeLayout::kHalfSplit;
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

namespace {

// GGUF `general.architecture` -> Hugging Face architecture name for the model registry.
struct GgufArch {
  std::string_view gguf;
  std::string_view hf;
  std::string_view model_type;
};
constexpr GgufArch kGgufArchs[] = {
    {"llama", "LlamaForCausalLM", "llama"},
};

}  // namespace

absl::StatusOr<ModelConfig> ConfigFromGguf(const GgufFile& gguf) {
  const std::string& source = gguf.path();
  STRATA_ASSIGN_OR_RETURN(std::optional<std::string> arch, gguf.GetString("general.architecture"));
  if (!arch) return absl::InvalidArgumentError(absl::StrCat(source, ": missing general.architecture"));
  ModelConfig c;
  for (const GgufArch& a : kGgufArchs) {
    if (a.gguf == *arch) {
      c.architecture = std::string(a.hf);
      c.model_type = std::string(a.model_type);
    }
  }
  if (c.architecture.empty()) {
    return absl::UnimplementedError(
        absl::StrCat(source, ": GGUF architecture '", *arch, "' is not supported (supported: llama)"));
  }
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
  STRATA_RETURN_IF_ERROR(get_float(p + "attention.layer_norm_rms_epsilon", &c.rms_norm_eps));
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
  c.rope_layout = RopeLayout::kInterleaved;
  // GGUF has no torch_dtype: take the storage type of the first layer's query weight, which
  // is what the shard planner sizes weights by (block-quantized types stay at the 2-byte
  // default, an overestimate).
  if (auto q = gguf.Get("blk.0.attn_q.weight"); q.ok()) {
    if (q->dtype == DType::kF32) c.torch_dtype = "float32";
    if (q->dtype == DType::kF16) c.torch_dtype = "float16";
    if (q->dtype == DType::kBF16) c.torch_dtype = "bfloat16";
  }
  STRATA_RETURN_IF_ERROR(c.Validate(source));
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path) {
  if (std::filesystem::is_directory(path)) return LoadHfConfig(path);
  if (path.ends_with(".gguf")) {
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> gguf, GgufFile::Open(path));
    return ConfigFromGguf(*gguf);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": expected a Hugging Face model directory or a .gguf file"));
}

namespace {

// theta^(-2i/d) for i < d/2, in fp32 as transformers computes it.
std::vector<float> BaseInvFreq(const ModelConfig& c, int64_t dim) {
  std::vector<float> inv(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    inv[i] = 1.0f / std::pow(static_cast<float>(c.rope_theta), exponent);
  }
  return inv;
}

void ApplyLlama3(const RopeScaling& s, std::vector<float>& inv) {
  const float factor = static_cast<float>(s.factor);
  const float old_ctx = static_cast<float>(s.original_max_position_embeddings);
  const float low = static_cast<float>(s.low_freq_factor);
  const float high = static_cast<float>(s.high_freq_factor);
  const float low_freq_wavelen = old_ctx / low;
  const float high_freq_wavelen = old_ctx / high;
  for (float& f : inv) {
    const float wavelen = 2.0f * std::numbers::pi_v<float> / f;
    if (wavelen < high_freq_wavelen) continue;  // high frequency: unchanged
    if (wavelen > low_freq_wavelen) {           // low frequency: fully scaled
      f /= factor;
      continue;
    }
    const float smooth = (old_ctx / wavelen - low) / (high - low);
    f = (1.0f - smooth) * f / factor + smooth * f;
  }
}

// YaRN's attention factor for a scale: 0.1 * mscale * ln(scale) + 1.
double YarnMscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

// transformers' _compute_yarn_parameters.
void ApplyYarn(const ModelConfig& c, int64_t dim, RopeFrequencies& out) {
  const RopeScaling& s = c.rope_scaling;
  const double base = c.rope_theta;
  const double original = s.original_max_position_embeddings > 0
                              ? static_cast<double>(s.original_max_position_embeddings)
                              : static_cast<double>(c.max_position_embeddings);
  auto correction_dim = [&](double rotations) {
    return dim * std::log(original / (rotations * 2 * std::numbers::pi)) / (2 * std::log(base));
  };
  const double low = std::max(0.0, std::floor(correction_dim(s.beta_fast)));
  double high = std::min(static_cast<double>(dim - 1), std::ceil(correction_dim(s.beta_slow)));
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float pos_freq = std::pow(static_cast<float>(base), static_cast<float>(2 * i) / dim);
    const float extrapolation = 1.0f / pos_freq;
    const float interpolation = 1.0f / (static_cast<float>(s.factor) * pos_freq);
    const float ramp = std::clamp(static_cast<float>((i - low) / (high - low)), 0.0f, 1.0f);
    const float extrapolation_factor = 1.0f - ramp;
    out.inv_freq[i] = interpolation * (1.0f - extrapolation_factor) +
                      extrapolation * extrapolation_factor;
  }
  double attention = s.attention_factor;
  if (attention <= 0) {
    attention = s.mscale > 0 && s.mscale_all_dim > 0
                    ? YarnMscale(s.factor, s.mscale) / YarnMscale(s.factor, s.mscale_all_dim)
                    : YarnMscale(s.factor, 1.0);
  }
  out.mscale = static_cast<float>(attention);
}

// transformers' _compute_longrope_parameters.
absl::Status ApplyLongRope(const ModelConfig& c, int64_t dim, RopeFrequencies& out) {
  const RopeScaling& s = c.rope_scaling;
  if (static_cast<int64_t>(s.short_factor.size()) != dim / 2 ||
      static_cast<int64_t>(s.long_factor.size()) != dim / 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "longrope rope_scaling needs short_factor and long_factor of ", dim / 2,
        " values each, got ", s.short_factor.size(), " and ", s.long_factor.size()));
  }
  const double original = s.original_max_position_embeddings > 0
                              ? static_cast<double>(s.original_max_position_embeddings)
                              : static_cast<double>(c.max_position_embeddings);
  double attention = s.attention_factor;
  if (attention <= 0) {
    const double factor = c.max_position_embeddings / original;
    attention = factor <= 1.0 ? 1.0 : std::sqrt(1 + std::log(factor) / std::log(original));
  }
  out.long_inv_freq.resize(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float base = std::pow(static_cast<float>(c.rope_theta), static_cast<float>(2 * i) / dim);
    out.inv_freq[i] = 1.0f / (static_cast<float>(s.short_factor[i]) * base);
    out.long_inv_freq[i] = 1.0f / (static_cast<float>(s.long_factor[i]) * base);
  }
  out.mscale = static_cast<float>(attention);
  out.long_threshold = static_cast<int64_t>(original);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RopeFrequencies> ComputeRopeFrequencies(const ModelConfig& config) {
  RopeFrequencies out;
  out.rotary_dim = RotaryDim(config);
  out.inv_freq = BaseInvFreq(config, out.rotary_dim);
  const RopeScaling& s = config.rope_scaling;
  switch (s.type) {
    case RopeScalingType::kNone:
      break;
    case RopeScalingType::kLinear:
      for (float& f : out.inv_freq) f /= static_cast<float>(s.factor);
      break;
    case RopeScalingType::kLlama3:
      ApplyLlama3(s, out.inv_freq);
      break;
    case RopeScalingType::kYarn:
      ApplyYarn(config, out.rotary_dim, out);
      break;
    case RopeScalingType::kLongRope:
      STRATA_RETURN_IF_ERROR(ApplyLongRope(config, out.rotary_dim, out));
      break;
  }
  return out;
}

}  // namespace strata

#include "common/model_config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numbers>

#include "absl/strings/str_cat.h"
#include "common/formats/gguf.h"
#include "common/status.h"

namespace strata {

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
  // Far above any real model, low enough that tables sized by them (RoPE, embeddings, plans)
  // cannot exhaust memory: a corrupt or hostile file fails here (found by gguf_fuzz: a
  // key_length of 2^40 built a RoPE table for a minute).
  auto at_most = [&](std::string_view name, int64_t v, int64_t limit) -> absl::Status {
    if (v <= limit) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", std::string(name), " ", v,
                                                   " is implausibly large (limit ", limit, ")"));
  };
  STRATA_RETURN_IF_ERROR(at_most("vocab_size", vocab_size, int64_t{1} << 24));
  STRATA_RETURN_IF_ERROR(at_most("hidden_size", hidden_size, int64_t{1} << 18));
  STRATA_RETURN_IF_ERROR(at_most("intermediate_size", intermediate_size, int64_t{1} << 22));
  STRATA_RETURN_IF_ERROR(at_most("num_hidden_layers", num_layers, 4096));
  STRATA_RETURN_IF_ERROR(at_most("num_attention_heads", num_heads, 8192));
  STRATA_RETURN_IF_ERROR(at_most("num_key_value_heads", num_kv_heads, 8192));
  STRATA_RETURN_IF_ERROR(at_most("head_dim", head_dim, 8192));
  STRATA_RETURN_IF_ERROR(at_most("max_position_embeddings", max_position_embeddings,
                                 int64_t{1} << 26));
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

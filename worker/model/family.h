// Family: what a model family contributes — the names of its weights in Hugging Face and GGUF
// checkpoints, the configs it refuses, and a recipe that builds one decoder layer from the
// layer library. Everything else (loading, tensor and pipeline parallelism, RoPE tables, the
// embedding, final norm and lm_head, the KV cache, the step loop) is the decoder's
// (decoder.h). One file per family (llama.cc, ...), registered in model_registry.cc by its
// Hugging Face `architectures` and GGUF `general.architecture` names.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "worker/model/layer.h"
#include "worker/model/layers/norm.h"
#include "worker/model/layers/vocab.h"
#include "worker/model/weight_loader.h"

namespace strata {

// The parts around the layers.
struct DecoderSpec {
  float embed_scale = 1.0f;  // Gemma: sqrt(hidden_size)
  NormSpec final_norm;
  bool lm_head_bias = false;
  float final_softcap = 0.0f;
};

struct Family {
  std::string_view name;  // "llama"
  std::vector<std::string_view> architectures;       // Hugging Face `architectures`
  std::vector<std::string_view> gguf_architectures;  // GGUF `general.architecture`
  // Roles "embed", "final_norm", "lm_head" (and "rope_freqs") plus what the layers use.
  const NameTable* names = nullptr;
  // OK, or Unimplemented naming what this implementation does not support in `config`.
  absl::Status (*check)(const ModelConfig& config) = nullptr;
  DecoderSpec (*decoder)(const ModelConfig& config, bool gguf) = nullptr;
  absl::StatusOr<std::unique_ptr<DecoderLayer>> (*build_layer)(LayerBuilder& b) = nullptr;
};

// RMSNorm with the config's epsilon: the norm most families use.
inline NormSpec RmsNormSpec(const ModelConfig& c) {
  NormSpec n;
  n.kind = NormKind::kRms;
  n.eps = static_cast<float>(c.rms_norm_eps);
  return n;
}

// LayerNorm with a bias and the config's epsilon (Phi-2, Falcon).
inline NormSpec LayerNormSpec(const ModelConfig& c) {
  NormSpec n = RmsNormSpec(c);
  n.kind = NormKind::kLayer;
  n.bias = true;
  return n;
}

}  // namespace strata

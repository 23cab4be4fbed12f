// The model families, one file each, and the pieces several families share.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "worker/model/family.h"
#include "worker/model/layers/attention.h"
#include "worker/model/layers/block.h"
#include "worker/model/layers/mlp.h"

namespace strata {

const Family& LlamaFamily();     // llama.cc
const Family& MistralFamily();   // mistral.cc
const Family& MixtralFamily();   // mixtral.cc
const Family& Qwen2Family();     // qwen.cc
const Family& Qwen3Family();     // qwen.cc
const Family& Phi3Family();      // phi.cc
const Family& Phi2Family();      // phi.cc
const Family& Gemma2Family();    // gemma.cc
const Family& Olmo2Family();     // olmo.cc
const Family& FalconFamily();    // falcon.cc
const Family& DeepseekV2Family();  // deepseek.cc

// Llama's weight names (Hugging Face and GGUF), which many families start from.
const NameTable& LlamaNames();
// Llama's attention, MLP and pre-norm block from the config (biases from attention_bias and
// mlp_bias, the sliding window on every layer, the activation from hidden_act).
AttentionSpec LlamaAttention(const ModelConfig& c);
MlpSpec LlamaMlp(const ModelConfig& c);
BlockSpec PreNormBlock(const ModelConfig& c);
// A block of `attention` and `mlp` specs: the common case of a family's build_layer.
absl::StatusOr<std::unique_ptr<DecoderLayer>> BuildBlock(LayerBuilder& b, const BlockSpec& block,
                                                          const AttentionSpec& attention,
                                                          const MlpSpec& mlp);
absl::StatusOr<std::unique_ptr<DecoderLayer>> BuildLlamaLayer(LayerBuilder& b);
DecoderSpec LlamaDecoder(const ModelConfig& config, bool gguf);

// The MLP activation config.json names; Unimplemented for others.
absl::StatusOr<Activation> ActivationOf(const ModelConfig& c);
// OK for a dense config without unsupported features; Unimplemented naming them otherwise.
absl::Status CheckDense(const ModelConfig& config);
absl::Status CheckNothingUnsupported(const ModelConfig& config);

}  // namespace strata

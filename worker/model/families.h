// The model families, one file each, and the pieces families share.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "worker/model/family.h"

namespace strata {

const Family& LlamaFamily();    // llama.cc
const Family& MistralFamily();  // mistral.cc
const Family& MixtralFamily();  // mixtral.cc

// Shared by families that are Llama's layer under other names or with more switches.
const NameTable& LlamaNames();
absl::StatusOr<std::unique_ptr<DecoderLayer>> BuildLlamaLayer(LayerBuilder& b);
DecoderSpec LlamaDecoder(const ModelConfig& config, bool gguf);
// Refuses mixture-of-experts configs (a dense family given an MoE checkpoint).
absl::Status CheckDense(const ModelConfig& config);

}  // namespace strata

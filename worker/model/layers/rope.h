// The runner's RoPE tables: the config's frequencies (default, linear, llama3, yarn, longrope;
// partial rotary) computed once on the host and placed on the backend. GGUF Llama 3 files carry
// their frequency scaling as the `rope_freqs` tensor instead (llama.cpp divides each base
// frequency by its factor); a family names it with the role "rope_freqs".
#pragma once

#include "absl/status/statusor.h"
#include "worker/model/layer.h"

namespace strata {

absl::StatusOr<RopeTables> BuildRopeTables(const ModelConfig& config, WeightLoader& weights,
                                           RopeLayout layout);

}  // namespace strata

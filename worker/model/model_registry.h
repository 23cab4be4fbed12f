// The table from Hugging Face architecture names to model implementations.
#pragma once

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/formats/weight_source.h"
#include "common/model_config.h"
#include "worker/backend/backend.h"
#include "worker/model/model_runner.h"

namespace strata {

// Everything a model implementation needs to build itself. `weights` stays alive as long as
// the runner (its views point into mmap'ed files).
struct ModelContext {
  ModelConfig config;
  std::shared_ptr<const WeightSource> weights;
  bool gguf_names = false;  // tensors use GGUF names (blk.N.attn_q.weight) rather than HF ones
  Backend* backend = nullptr;
  ModelLoadOptions options;
};

using ModelFactory = absl::StatusOr<std::unique_ptr<ModelRunner>> (*)(const ModelContext&);

// The factory for `architecture`, or nullptr.
ModelFactory FindModelFactory(std::string_view architecture);

// Per-family factories (one file each).
absl::StatusOr<std::unique_ptr<ModelRunner>> CreateLlamaModel(const ModelContext& context);

}  // namespace strata

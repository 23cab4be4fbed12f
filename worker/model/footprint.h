// ModelFootprint: what one rank of a tensor-parallel group holds, found by building the
// model's layers in planning mode (the same code that loads them, so the same splits), without
// reading a weight. The shard planner (coordinator/cluster/shard_planner.h) balances pipeline
// stages and sizes KV caches with it.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/model/decoder.h"

namespace strata {

struct ModelFootprint {
  int tp = 1;
  bool expert_parallel = false;
  std::vector<int64_t> layer_bytes;  // [num_layers] weights of layer l on one rank
  int64_t first_bytes = 0;  // the first stage's extra: embedding slice and tables
  // The last stage's extra: the final norm and lm_head slice, when the stage also holds the
  // embedding (one stage: a tied head reuses it) and when it does not.
  int64_t last_bytes_with_embedding = 0;
  int64_t last_bytes_alone = 0;
  std::vector<int64_t> kv_elements_per_token;  // [num_layers] KV values per token on one rank
  std::vector<int64_t> kv_rows_per_token;      // [num_layers] their (K or V, head) rows
  int64_t total_bytes = 0;  // the whole model on one rank (tp = 1): for reports
};

struct FootprintOptions {
  int tp = 1;
  bool expert_parallel = false;
  std::optional<DType> weight_dtype;  // conversion on load (nullopt: as stored)
};

// `context.weights` may be null (a config without weights: sizes from torch_dtype and the
// quantization_config); with weights, the stored tensor types count.
absl::StatusOr<ModelFootprint> ComputeFootprint(const ModelContext& context,
                                                const FootprintOptions& options);

}  // namespace strata

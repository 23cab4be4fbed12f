// ShardPlan: how a model is split over a cluster, decided before anything is loaded.
//
// Tensor parallelism (TP) runs inside a node, over its fast links; pipeline parallelism (PP)
// runs across nodes, one stage per node. What one TP rank holds comes from the model's
// footprint (worker/model/footprint.h): the model's own layers built in planning mode, so the
// planner sizes exactly the slices the loader will load (query heads split evenly, KV heads
// following their groups and replicated when TP exceeds them, MLP and expert widths split or
// experts spread, vocabulary rows split). Under PP, contiguous layer ranges are chosen to
// balance weight bytes, counting the embedding on the first stage and the final norm and
// lm_head on the last. Every rank's KV capacity comes from what is left of its memory after
// weights and an activation reserve, at the workers' KV dtype and the model's KV shape per
// token.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/byte_size.h"
#include "common/dtype.h"
#include "common/model_config.h"
#include "worker/model/footprint.h"

namespace strata {

struct ClusterSpec {
  int64_t nodes = 1;
  int64_t devices_per_node = 1;
  int64_t memory_per_device = 0;  // bytes
  // Share of device memory Strata may use (weights + KV + activations), as vLLM's
  // gpu_memory_utilization.
  double memory_utilization = 0.90;
  // Bytes per device kept for activations and workspace.
  int64_t activation_reserve = int64_t{1} << 30;
  DType kv_dtype = DType::kBF16;  // what the workers' KV caches hold
};

struct PlanOptions {
  // The KV cache must hold at least this many tokens (one full-length sequence); 0 means the
  // model's max_position_embeddings.
  int64_t min_kv_tokens = 0;
  int64_t kv_block_size = 16;
};

// What one rank (one device) holds.
struct RankPlan {
  int64_t rank = 0;  // stage * tp + tp_rank
  int64_t node = 0;
  int64_t stage = 0;
  int64_t tp_rank = 0;
  int64_t layer_begin = 0;  // [layer_begin, layer_end)
  int64_t layer_end = 0;
  int64_t q_heads = 0;       // query heads on this rank
  int64_t kv_heads = 0;      // KV heads on this rank (a replica when TP > KV heads)
  int64_t vocab_begin = 0;   // embedding / lm_head rows on this rank (first/last stage)
  int64_t vocab_end = 0;
  int64_t expert_begin = 0;  // routed experts on this rank (MoE): [expert_begin, expert_end)
  int64_t expert_end = 0;
  int64_t weight_bytes = 0;
  int64_t kv_bytes_per_token = 0;
  int64_t kv_blocks = 0;
};

struct ShardPlan {
  int64_t tp = 1;
  int64_t pp = 1;
  int64_t kv_replication = 1;   // ranks sharing one KV head (TP / KV heads, when > 1)
  bool expert_parallel = false;  // MoE experts spread over each stage's ranks (else split)
  int64_t total_weight_bytes = 0;
  int64_t kv_tokens = 0;        // capacity of the whole cluster (minimum over stages)
  std::vector<RankPlan> ranks;  // rank order

  // A human-readable table of the plan (`strata plan`).
  std::string Explain(const ModelConfig& config, const ClusterSpec& cluster) const;
};

// Plans TP = devices_per_node and PP = nodes with `footprint` (computed for that TP size).
// Fails with FailedPrecondition when heads or widths do not divide, and ResourceExhausted when
// a rank does not fit, saying how many nodes of this kind (or how much memory per device)
// would.
absl::StatusOr<ShardPlan> PlanShards(const ModelConfig& config, const ModelFootprint& footprint,
                                     const ClusterSpec& cluster, const PlanOptions& options = {});

// Opens the model at `path` (its weights when present: a directory of configs alone plans by
// its config) and plans it.
absl::StatusOr<ShardPlan> PlanModel(const std::string& path, const ClusterSpec& cluster,
                                    const PlanOptions& options = {},
                                    const FootprintOptions& footprint = {});

}  // namespace strata

// ShardPlan: how a model is split over a cluster, decided before anything is loaded.
//
// Tensor parallelism (TP) runs inside a node, over its fast links; pipeline parallelism (PP)
// runs across nodes, one stage per node. Under TP, query heads split evenly; KV heads follow
// their query groups and are replicated when TP exceeds their count; MLP and expert widths
// split evenly; the embedding and lm_head split by vocabulary rows. Under PP, contiguous layer
// ranges are chosen to balance weight bytes, counting the embedding on the first stage and
// the final norm and lm_head on the last. Every rank's KV capacity comes from what is left of
// its memory after weights and a fixed activation reserve.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"

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
};

struct PlanOptions {
  // The KV cache must hold at least this many tokens (one full-length sequence); 0 means the
  // model's max_position_embeddings.
  int64_t min_kv_tokens = 0;
  int64_t kv_block_size = 16;
  int64_t kv_dtype_bytes = 2;  // bf16/f16 KV cache
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
  int64_t weight_bytes = 0;
  int64_t kv_bytes_per_token = 0;
  int64_t kv_blocks = 0;
};

struct ShardPlan {
  int64_t tp = 1;
  int64_t pp = 1;
  int64_t kv_replication = 1;   // ranks sharing one KV head (TP / KV heads, when > 1)
  int64_t total_weight_bytes = 0;
  int64_t kv_tokens = 0;        // capacity of the whole cluster (minimum over stages)
  std::vector<RankPlan> ranks;  // rank order

  // A human-readable table of the plan (`strata plan`).
  std::string Explain(const ModelConfig& config, const ClusterSpec& cluster) const;
};

// Plans TP = devices_per_node and PP = nodes. Fails with FailedPrecondition when heads or
// widths do not divide, and ResourceExhausted when a rank does not fit, saying how many
// nodes of this kind (or how much memory per device) would.
absl::StatusOr<ShardPlan> PlanShards(const ModelConfig& config, const ClusterSpec& cluster,
                                     const PlanOptions& options = {});

// Weight bytes of the whole model as stored (quantization included).
int64_t ModelWeightBytes(const ModelConfig& config);

// Parses "80GiB", "80GB", "512MiB", "1.5TiB" or a plain byte count.
absl::StatusOr<int64_t> ParseByteSize(std::string_view text);

// "79.5 GiB"
std::string FormatBytes(int64_t bytes);

}  // namespace strata

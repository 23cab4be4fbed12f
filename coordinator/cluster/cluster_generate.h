// GenerateOnCluster: generates for a fixed set of prompts through a ClusterExecutor. Each
// prompt is one sequence with its own KV blocks; the sequences are dealt round-robin into
// micro-batches (as many as pipeline stages by default) and one step per micro-batch is kept
// in flight, so under pipeline parallelism stage s works on one micro-batch while stage s + 1
// works on the previous one. Every sequence gets exactly the tokens it would get alone.
//
// This is the offline driver of `strata serve --prompt`, the distributed tests and
// `strata bench cluster`; the serving engine schedules requests as they come.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/sampling_params.h"
#include "coordinator/cluster/cluster_executor.h"

namespace strata {

struct ClusterGenerateOptions {
  int64_t max_new_tokens = 16;
  SamplingParams sampling;       // per sequence; seeded sampling uses stream = prompt index
  bool stop_at_eos = true;
  bool return_logits = false;    // keep each sampled token's logits
  int micro_batches = 0;         // 0 = one per pipeline stage
  uint64_t first_seq_id = 1;     // sequence ids used: first_seq_id + prompt index
};

struct ClusterSequenceOutput {
  std::vector<int32_t> tokens;
  std::vector<std::vector<float>> logits;  // with return_logits: one [vocab] row per token
};

struct ClusterGenerateResult {
  std::vector<ClusterSequenceOutput> sequences;  // in prompt order
  int64_t steps = 0;
  double seconds = 0;               // wall time of the whole generation
  double decode_seconds = 0;        // from the first step whose tokens are all decodes
  int64_t decode_tokens = 0;        // tokens produced in that time
  double step_wall_seconds = 0;     // sum over steps of Submit-to-answer time
  double step_compute_seconds = 0;  // sum over steps of the slowest rank's compute
  // Per step: Submit-to-answer time minus the slowest rank's compute. With one stage this is
  // the coordinator's and the transport's share; with several it also holds the other
  // stages' compute.
  std::vector<double> step_overhead_seconds;
};

// InvalidArgument for an empty prompt list or prompt; ResourceExhausted when the prompts'
// blocks do not fit the cluster's KV cache; the executor's error when a step fails.
absl::StatusOr<ClusterGenerateResult> GenerateOnCluster(
    ClusterExecutor& executor, const std::vector<std::vector<int32_t>>& prompts,
    const ClusterGenerateOptions& options);

}  // namespace strata

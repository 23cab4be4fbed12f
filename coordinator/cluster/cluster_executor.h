// ClusterExecutor: runs one model sharded over the registered workers as if it were one
// device.
//
// Start() waits for tp x pp live workers, assigns them to ranks (workers of one node form a
// stage's TP group; stages follow node order), plans the shards (shard_planner.h), loads every
// rank in parallel (WorkerService.Load, progress logged), and opens one step stream per rank.
//
// Submit() sends a step to every rank in the same order (the ranks' collectives must line up)
// and returns at once; Wait() returns when every rank has answered, with the tokens sampled by
// the last stage. Under pipeline parallelism a caller keeps up to pp steps in flight over
// disjoint sequences so the stages overlap (cluster_generate.h).
//
// Failure: a worker whose lease expires (membership.h), whose step stream breaks, or that
// does not answer a step within step_timeout breaks the executor: every pending and later
// step fails with Unavailable naming the worker and what happened. A recovery thread then
// waits for tp x pp live workers again (a restarted worker re-registers), reloads every rank
// under a new generation (the old collective groups are gone) and reopens the streams; steps
// work again after that. KV contents do not survive a recovery: callers start their sequences
// over (num_cached = 0).
//
// Thread-safe. Generated gRPC types stay in cluster_executor.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "common/sampling_params.h"
#include "coordinator/cluster/membership.h"
#include "coordinator/cluster/shard_planner.h"

namespace strata {

struct ExecutorOptions {
  std::string model;          // path as the workers see it (and this process, for the config)
  std::string weight_dtype;   // "" = as stored; else converted on load ("f16", "q8_0", ...)
  int tp = 1;
  int pp = 1;
  int kv_block_size = 16;
  // KV blocks per rank: the plan's capacity (minimum over ranks) capped at this; 0 = no cap.
  int64_t max_kv_blocks = 4096;
  // The KV cache must hold at least this many tokens; 0 = the model's max positions.
  int64_t min_kv_tokens = 0;
  int threads_per_worker = 0;  // 0 = each worker's default
  std::chrono::milliseconds worker_wait{std::chrono::seconds(60)};  // for workers to register
  std::chrono::milliseconds load_timeout{std::chrono::minutes(10)};
  std::chrono::milliseconds step_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds comm_timeout{std::chrono::seconds(30)};  // workers' collectives
  bool recover = true;  // reload automatically when enough workers are alive again
};

// One sequence's share of a step (see strata.v1.SequenceStep).
struct SequenceStepInput {
  uint64_t seq_id = 0;
  std::vector<int32_t> tokens;     // new tokens
  int32_t num_cached = 0;          // tokens already in the cache
  std::vector<int32_t> new_blocks; // blocks appended to the sequence's table
  bool start = false;              // new_blocks is the whole table (see strata.v1.SequenceStep)
  int32_t num_prompt_tokens = 0;   // positions below are prompt, the rest output (penalties)
  std::vector<int32_t> cached_tokens;  // with start and num_cached > 0, for the penalties
  bool sample = true;
  SamplingParams sampling;
};

struct StepInput {
  std::vector<SequenceStepInput> seqs;
  std::vector<uint64_t> release;   // sequences the workers may forget before this step
  bool return_logits = false;
};

struct StepOutput {
  std::vector<int32_t> tokens;     // one per sequence with sample = true, in order
  std::vector<std::optional<TokenLogprobs>> logprobs;  // [tokens.size()], where asked
  std::vector<float> logits;       // with return_logits: [tokens.size(), vocab]
  double wall_seconds = 0;         // Submit to the last rank's answer
  double max_compute_seconds = 0;  // the slowest rank's time inside its step
};

// One rank as the executor sees it (for metrics and health pages).
struct RankStatus {
  int rank = 0;
  uint64_t worker_id = 0;
  std::string host;
  bool up = false;                  // its worker holds a lease and the cluster is loaded
  int64_t steps = 0;                // steps it answered
  double compute_seconds = 0;       // sum of its reported step compute time
};

class ClusterExecutor {
 public:
  // Plans and loads; fails with a message naming what was missing (workers that never
  // registered, a plan that does not fit, a rank that failed to load).
  static absl::StatusOr<std::unique_ptr<ClusterExecutor>> Start(Membership& membership,
                                                                ExecutorOptions options);
  ~ClusterExecutor();
  ClusterExecutor(const ClusterExecutor&) = delete;
  ClusterExecutor& operator=(const ClusterExecutor&) = delete;

  const ModelConfig& config() const;
  const ShardPlan& plan() const;   // the plan of the current generation
  int64_t kv_blocks() const;       // per rank, identical on all ranks
  int kv_block_size() const;

  using Ticket = uint64_t;
  // Sends `step` to every rank. Unavailable while broken or recovering.
  absl::StatusOr<Ticket> Submit(const StepInput& step);
  // Waits for a submitted step (each ticket once).
  absl::StatusOr<StepOutput> Wait(Ticket ticket);
  absl::StatusOr<StepOutput> Run(const StepInput& step);

  // OK while steps can run; otherwise why not.
  absl::Status health() const;
  // Waits until steps can run (after a recovery); DeadlineExceeded after `timeout`.
  absl::Status WaitReady(std::chrono::milliseconds timeout) const;
  // Every rank of the current generation (empty while none is loaded).
  std::vector<RankStatus> ranks() const;
  // The loaded generation: 1 after Start, larger after each recovery.
  uint64_t generation() const;

 private:
  struct State;
  explicit ClusterExecutor(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace strata

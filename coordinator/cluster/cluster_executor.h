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
// disjoint sequences so the stages overlap (engine/batch_generate.h).
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

#include "proto/tls.h"
#include "absl/status/statusor.h"
#include "common/executor.h"
#include "common/model_config.h"
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
  // The largest step the engine will send (the engine's token budget and sequence cap); the
  // workers size their workspaces for it.
  int64_t max_step_tokens = 2048;
  int64_t max_logit_rows = 256;
  bool expert_parallel = false;  // MoE: spread experts across each stage's TP ranks
  std::chrono::milliseconds worker_wait{std::chrono::seconds(60)};  // for workers to register
  std::chrono::milliseconds load_timeout{std::chrono::minutes(10)};
  std::chrono::milliseconds step_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds comm_timeout{std::chrono::seconds(30)};  // workers' collectives
  bool recover = true;  // reload automatically when enough workers are alive again
  TlsFiles tls;         // mutual TLS with the workers (none: plaintext)
};

class ClusterExecutor final : public Executor {
 public:
  // Plans and loads; fails with a message naming what was missing (workers that never
  // registered, a plan that does not fit, a rank that failed to load).
  static absl::StatusOr<std::unique_ptr<ClusterExecutor>> Start(Membership& membership,
                                                                ExecutorOptions options);
  ~ClusterExecutor();
  ClusterExecutor(const ClusterExecutor&) = delete;
  ClusterExecutor& operator=(const ClusterExecutor&) = delete;

  const ModelConfig& config() const override;
  const ShardPlan& plan() const;   // the plan of the current generation
  int64_t kv_blocks() const override;  // per rank, identical on all ranks
  int kv_block_size() const override;
  int pipeline_depth() const override;  // pp
  int64_t max_step_tokens() const override;
  int64_t weight_bytes() const override;

  // Sends `step` to every rank. Unavailable while broken or recovering.
  absl::StatusOr<Ticket> Submit(const StepInput& step) override;
  absl::StatusOr<StepOutput> Wait(Ticket ticket) override;

  absl::Status health() const override;
  absl::Status WaitReady(std::chrono::milliseconds timeout) const override;
  // Every rank of the current generation (empty while none is loaded).
  std::vector<RankStatus> ranks() const override;
  // The loaded generation: 1 after Start, larger after each recovery.
  uint64_t generation() const;

 private:
  struct State;
  explicit ClusterExecutor(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace strata

// Executor: where the engine's steps run, as if the model were on one device. The engine
// (coordinator/engine) drives every implementation the same way:
//
//   ClusterExecutor (coordinator/cluster)  worker processes over gRPC, TP x PP
//   LocalExecutor   (worker/runtime)       one in-process shard (strata generate, tests)
//   fakes in tests                         scripted outputs and failures
//
// Submit() queues a step and returns at once; Wait() returns its output. A caller keeps up to
// pipeline_depth() steps in flight over disjoint sequences (pipeline stages overlap). A failed
// step fails with Unavailable; the executor may recover by itself (health() and WaitReady()
// tell), after which the KV cache is empty: callers recompute their sequences.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "common/step.h"

namespace strata {

class Executor {
 public:
  virtual ~Executor() = default;

  virtual const ModelConfig& config() const = 0;
  virtual int64_t kv_blocks() const = 0;     // per rank, identical on all ranks
  virtual int kv_block_size() const = 0;
  virtual int pipeline_depth() const = 0;    // steps worth keeping in flight
  virtual int64_t max_step_tokens() const = 0;  // tokens per step at most
  virtual int64_t weight_bytes() const = 0;  // the model's weights as loaded, all ranks

  using Ticket = uint64_t;
  virtual absl::StatusOr<Ticket> Submit(const StepInput& step) = 0;
  // Waits for a submitted step (each ticket once).
  virtual absl::StatusOr<StepOutput> Wait(Ticket ticket) = 0;
  absl::StatusOr<StepOutput> Run(const StepInput& step) {
    absl::StatusOr<Ticket> ticket = Submit(step);
    if (!ticket.ok()) return ticket.status();
    return Wait(*ticket);
  }

  // OK while steps can run; otherwise why not.
  virtual absl::Status health() const = 0;
  // Waits until steps can run; DeadlineExceeded after `timeout`.
  virtual absl::Status WaitReady(std::chrono::milliseconds timeout) const = 0;
  virtual std::vector<RankStatus> ranks() const = 0;
};

}  // namespace strata

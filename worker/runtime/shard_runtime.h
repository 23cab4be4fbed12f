// ShardRuntime: one worker's loaded shard at work. It keeps what a worker remembers between
// steps (each sequence's block table, and on the sampling rank its token history for the
// penalties) and runs StepInputs:
//
//   1. validate the whole step (tokens, positions, blocks, sampling, sizes) before touching
//      any state: every rank receives the same step and refuses it the same way, so no rank
//      is left waiting in a collective;
//   2. plan it on the backend once (Backend::PlanStep);
//   3. stage s > 0 receives its input hidden states from stage s - 1 (each TP rank from its
//      counterpart), the runner runs its layers, stage s < last sends them on;
//   4. the last stage's TP rank 0 samples on the backend; only token ids (and logprobs, and
//      logits when asked) leave it.
//
// The worker service (worker/service) and the in-process LocalExecutor both drive it.
// Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "common/step.h"
#include "worker/backend/backend.h"
#include "worker/model/model_runner.h"
#include "worker/sampling/token_history.h"

namespace strata {

class Communicator;

struct StageRole {
  int pp_rank = 0;
  int pp_size = 1;
  int tp_rank = 0;
  Communicator* pp_comm = nullptr;  // this TP index across stages (pp_size > 1)
};

class ShardRuntime {
 public:
  // `runner` runs on `backend`; both are owned. `role.pp_comm` must outlive the runtime.
  ShardRuntime(std::unique_ptr<Backend> backend, std::unique_ptr<ModelRunner> runner,
               StageRole role);
  ~ShardRuntime();

  const ModelRunner& runner() const { return *runner_; }
  // The rank that returns tokens: the last stage's TP rank 0.
  bool is_sampler() const {
    return role_.pp_rank == role_.pp_size - 1 && role_.tp_rank == 0;
  }

  // Runs `step`. On the sampling rank `out` gets one token per sampled sequence (and logprobs,
  // and logits with step.return_logits); elsewhere it stays empty. InvalidArgument naming the
  // sequence and field for a malformed step (no state changed); other errors come from the
  // backend or the collectives.
  absl::Status Run(const StepInput& step, StepOutput& out);
  // Forgets sequences; returns how many were known.
  int Release(const std::vector<uint64_t>& seq_ids);

 private:
  struct SequenceState {
    std::vector<int32_t> block_table;
    TokenHistory history;  // sampling rank only
  };

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<ModelRunner> runner_;
  StageRole role_;
  absl::flat_hash_map<uint64_t, SequenceState> sequences_;
};

}  // namespace strata

// The step contract between the engine (which schedules) and the workers (which compute):
// what one step asks of every rank and what the last stage answers. The same types travel
// over the wire (proto/strata/v1/worker.proto, proto/step_codec.h) and in process (an
// in-process executor hands them to the worker runtime directly).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/sampling_params.h"

namespace strata {

// One sequence's share of a step.
struct SequenceStepInput {
  uint64_t seq_id = 0;
  std::vector<int32_t> tokens;     // new tokens, at positions num_cached, num_cached + 1, ...
  int32_t num_cached = 0;          // tokens already in the sequence's KV cache
  std::vector<int32_t> new_blocks; // blocks appended to the sequence's table before the step
  // new_blocks is the whole table (a new sequence, one restarted after preemption, or one
  // whose first num_cached tokens are cached prefix blocks): the workers forget what they
  // kept for seq_id.
  bool start = false;
  int32_t num_prompt_tokens = 0;   // positions below are prompt, the rest output (penalties)
  // With start and num_cached > 0 and penalties: the cached tokens (positions 0..num_cached-1).
  std::vector<int32_t> cached_tokens;
  bool sample = true;              // sample a token after the last new token
  SamplingParams sampling;
};

struct StepInput {
  std::vector<SequenceStepInput> seqs;
  std::vector<uint64_t> release;   // sequences the workers may forget before this step
  bool return_logits = false;      // also return each sampled row's logits (tests, scoring)
};

// A sampled "token" saying the sequence's logits were not a distribution (NaN or infinite: a
// numerical blow-up). That sequence fails alone; the others in the step go on.
inline constexpr int32_t kNonFiniteLogits = -1;

struct StepOutput {
  std::vector<int32_t> tokens;     // one per sequence with sample = true, in order (or
                                   // kNonFiniteLogits)
  std::vector<std::optional<TokenLogprobs>> logprobs;  // [tokens.size()], where asked
  std::vector<float> logits;       // with return_logits: [tokens.size(), vocab]
  double wall_seconds = 0;         // submission to the last rank's answer
  double max_compute_seconds = 0;  // the slowest rank's time inside its step
};

// One rank as an executor sees it (for metrics and health pages).
struct RankStatus {
  int rank = 0;
  uint64_t worker_id = 0;
  std::string host;
  bool up = false;                  // it holds its shard and answers
  int64_t steps = 0;                // steps it answered
  double compute_seconds = 0;       // sum of its reported step compute time
};

}  // namespace strata

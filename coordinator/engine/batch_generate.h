// GenerateBatch: generates for a fixed set of prompts through the serving engine, as the
// offline drivers need it: `strata generate`, `strata serve --prompt`, `strata bench`, and the
// tests that compare splits and backends. Each prompt is one request (greedy, or seeded with
// the options' seed); the engine batches them, keeps one step per pipeline stage in flight, and
// every prompt gets exactly the tokens it would get alone.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "common/executor.h"
#include "coordinator/engine/engine.h"

namespace strata::engine {

struct BatchGenerateOptions {
  int64_t max_new_tokens = 16;
  SamplingParams sampling;  // seed: the requests' seed (each prompt is its own request)
  bool stop_at_eos = true;
  bool return_logits = false;  // keep each sampled token's logits
  EngineOptions engine;
  // Called on the engine thread with each new token of prompt `index` (streaming output);
  // returning false cancels that prompt.
  std::function<bool(size_t index, int32_t token)> on_token;
};

struct BatchSequenceOutput {
  std::vector<int32_t> tokens;
  std::vector<std::vector<float>> logits;  // with return_logits: one [vocab] row per token
  FinishReason finish = FinishReason::kNone;
};

struct BatchGenerateResult {
  std::vector<BatchSequenceOutput> sequences;  // in prompt order
  double seconds = 0;          // wall time of the whole generation
  double first_token_seconds = 0;  // until every prompt had its first token (prefill)
  double decode_seconds = 0;   // after that
  int64_t decode_tokens = 0;   // tokens produced in decode_seconds
  std::vector<StepTiming> steps;  // every step, in order
};

// InvalidArgument for an empty prompt list or a request the engine refuses; the error of a
// sequence that failed.
absl::StatusOr<BatchGenerateResult> GenerateBatch(Executor& executor,
                                                  const std::vector<std::vector<int32_t>>& prompts,
                                                  const BatchGenerateOptions& options);

}  // namespace strata::engine

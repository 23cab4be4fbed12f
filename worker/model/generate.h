// Single-sequence generation on one ModelRunner that holds every layer: the offline path of
// `strata generate`, and the oracle the batched engine is tested against. The sequence owns
// the whole KV cache (blocks 0..n-1).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/model/model_runner.h"
#include "worker/sampling/sampler.h"

namespace strata {

struct GenerateOptions {
  int64_t max_new_tokens = 16;
  SamplingParams sampling;
  bool stop_at_eos = true;
  // Called with each new token; returning false stops generation.
  std::function<bool(int32_t)> on_token;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (not the prompt)
  bool stopped_at_eos = false;
  double prefill_seconds = 0;
  double decode_seconds = 0;  // time for tokens after the first
};

absl::StatusOr<GenerateResult> Generate(ModelRunner& model, absl::Span<const int32_t> prompt,
                                        const GenerateOptions& options);

}  // namespace strata

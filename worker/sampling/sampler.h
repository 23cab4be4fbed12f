// Token sampling from one row of logits. The last pipeline stage runs it for every sequence
// of a step. Filters apply in this order: temperature, top-k, top-p, min-p; the draw uses the
// counter-based Philox generator keyed by (seed, stream, position), so a seeded request is
// reproducible whatever it is batched with.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace strata {

struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy
  int32_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off; keep tokens with p >= min_p * max p
  uint64_t seed = 0;
  uint32_t stream = 0;       // which of a request's n samples

  bool IsGreedy() const { return temperature <= 0.0f || top_k == 1; }
  // InvalidArgument naming the field that is out of range.
  absl::Status Validate() const;
};

// Index of the largest logit, lowest index on ties.
int32_t Argmax(absl::Span<const float> logits);

// Samples a token id from `logits` ([vocab]) at sequence position `position`.
// `scratch` is reused between calls to avoid allocation.
int32_t SampleToken(absl::Span<const float> logits, const SamplingParams& params,
                    uint32_t position, std::vector<float>& scratch);

}  // namespace strata

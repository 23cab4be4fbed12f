// SamplingParams: how one sequence's next token is drawn. Plain data shared by the
// coordinator (which puts it in steps) and the worker's sampler (worker/sampling/sampler.h).
#pragma once

#include <cstdint>

#include "absl/status/status.h"

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

}  // namespace strata

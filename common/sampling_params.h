// SamplingParams: how one sequence's next token is drawn. Plain data shared by the
// coordinator (which puts it in steps) and the worker's sampler (worker/sampling/sampler.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace strata {

// Logits processing runs in this order: logit_bias, repetition penalty (prompt and output
// tokens), frequency and presence penalties (output tokens), then the sampler's temperature,
// top-k, top-p, min-p. Logprobs are those of the model's own distribution (log-softmax of the
// raw logits), as vLLM reports them.
struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy
  int32_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off; keep tokens with p >= min_p * max p
  uint64_t seed = 0;
  uint32_t stream = 0;       // which of a request's n samples

  float presence_penalty = 0.0f;    // [-2, 2]: subtracted once from every output token's logit
  float frequency_penalty = 0.0f;   // [-2, 2]: subtracted once per occurrence in the output
  float repetition_penalty = 1.0f;  // (0, 2]: HF-style, on prompt and output tokens; 1 = off
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id, bias in [-100, 100])
  int32_t logprobs = -1;  // -1: none; 0: the sampled token's; N <= 20: and the top N

  static constexpr int32_t kMaxLogprobs = 20;

  // A temperature so small that 1 / temperature overflows is greedy's limit too.
  bool IsGreedy() const {
    return temperature <= 0.0f || top_k == 1 || std::isinf(1.0f / temperature);
  }
  bool HasPenalties() const {
    return presence_penalty != 0.0f || frequency_penalty != 0.0f || repetition_penalty != 1.0f;
  }
  // InvalidArgument naming the field that is out of range (token ids are checked against the
  // vocabulary when `vocab_size` > 0).
  absl::Status Validate(int64_t vocab_size = 0) const;
};

// The log-probability of a sampled token and of the most likely alternatives.
struct TokenLogprobs {
  float logprob = 0.0f;
  std::vector<int32_t> top_ids;       // most likely first (lower id first on ties)
  std::vector<float> top_logprobs;
};

}  // namespace strata

// Token sampling from one row of logits. The last pipeline stage runs it for every sequence
// of a step. Filters apply in this order: temperature, top-k, top-p, min-p; the draw uses the
// counter-based Philox generator keyed by (seed, stream, position), so a seeded request is
// reproducible whatever it is batched with.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/sampling_params.h"
#include "worker/sampling/token_history.h"

namespace strata {

// Applies params' logit_bias, then the repetition penalty (HF: positive logits divided by it,
// negative ones multiplied) to every token seen, then the frequency and presence penalties
// (OpenAI: logit -= count * frequency + presence) to every output token. In place.
void ApplyLogitsProcessors(absl::Span<float> logits, const SamplingParams& params,
                           const TokenHistory& history);

// Log-softmax of `logits` at `token`, and the `top_n` most likely ids (lower id first on
// ties) with theirs.
TokenLogprobs ComputeLogprobs(absl::Span<const float> logits, int32_t token, int32_t top_n);

// Index of the largest logit, lowest index on ties.
int32_t Argmax(absl::Span<const float> logits);

// Samples a token id from `logits` ([vocab]) at sequence position `position`.
// `scratch` is reused between calls to avoid allocation.
int32_t SampleToken(absl::Span<const float> logits, const SamplingParams& params,
                    uint32_t position, std::vector<float>& scratch);

}  // namespace strata

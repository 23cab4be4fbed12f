// Sampling of f32 logits in host memory, the one implementation of Backend::Sample's contract
// (logit bias and penalties, temperature, top-k, top-p, min-p, Philox keyed by seed, stream and
// position; logprobs from the raw row; kNonFiniteLogits for a row with NaN or +inf or nothing
// finite). The CPU backend samples its logits in place; the CUDA backend copies the rows with
// logit bias, penalties or logprobs to the host first (the others it samples on the device by
// the same rules, kernels/cuda/ops.h LaunchSample).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/thread_pool.h"
#include "worker/backend/backend.h"

namespace strata {

//   logits: [rows.size(), vocab] f32, host memory
// Rows are sampled in parallel on `pool` when given (each row alone: the same results).
absl::Status SampleHostLogits(const float* logits, int64_t vocab,
                              absl::Span<const SamplingRow> rows,
                              std::vector<SampledToken>& out, ThreadPool* pool = nullptr);

}  // namespace strata

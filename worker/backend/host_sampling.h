// Sampling of f32 logits in host memory: Backend::Sample's contract (logit bias and penalties,
// temperature, top-k, top-p, min-p, Philox keyed by seed, stream and position; logprobs from the
// raw row; kNonFiniteLogits for a row with NaN or +inf or nothing finite) for the CPU backend,
// which samples its logits in place. The CUDA backend samples on the device by the same rules
// (kernels/cuda/ops.h: LaunchLogitsEdit, LaunchGreedy, LaunchSample, LaunchLogprobs).
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

#include "worker/backend/host_sampling.h"

#include <cmath>
#include <limits>

#include "common/step.h"
#include "worker/sampling/sampler.h"

namespace strata {
namespace {

// Logits a softmax can be taken of: no NaN, no +infinity, something finite.
bool IsDistribution(absl::Span<const float> logits) {
  bool finite = false;
  for (float x : logits) {
    if (std::isnan(x) || x == std::numeric_limits<float>::infinity()) return false;
    finite = finite || std::isfinite(x);
  }
  return finite;
}

// One row: `raw` is its logits.
SampledToken SampleRow(absl::Span<const float> raw, const SamplingRow& in) {
  static const TokenHistory kNoHistory;
  thread_local std::vector<float> processed, scratch;  // per thread: rows run in parallel
  const SamplingParams& params = *in.params;
  SampledToken out;
  if (!IsDistribution(raw)) {
    out.token = kNonFiniteLogits;
    return out;
  }
  absl::Span<const float> row = raw;
  if (!params.logit_bias.empty() || params.HasPenalties()) {
    processed.assign(raw.begin(), raw.end());
    ApplyLogitsProcessors(absl::MakeSpan(processed), params,
                          in.history != nullptr ? *in.history : kNoHistory);
    row = processed;
  }
  out.token = SampleToken(row, params, in.position, scratch);
  if (params.logprobs >= 0) out.logprobs = ComputeLogprobs(raw, out.token, params.logprobs);
  return out;
}

}  // namespace

absl::Status SampleHostLogits(const float* logits, int64_t vocab,
                              absl::Span<const SamplingRow> rows,
                              std::vector<SampledToken>& out, ThreadPool* pool) {
  const int64_t n = static_cast<int64_t>(rows.size());
  out.assign(n, SampledToken{});
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      out[r] = SampleRow(absl::MakeConstSpan(logits + r * vocab, vocab), rows[r]);
    }
  };
  if (pool != nullptr && n > 1 && pool->num_threads() > 1) {
    pool->ParallelFor(n, 1, run);
  } else {
    run(0, n);
  }
  return absl::OkStatus();
}

}  // namespace strata

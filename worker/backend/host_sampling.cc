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

}  // namespace

absl::Status SampleHostLogits(const float* logits, int64_t vocab,
                              absl::Span<const SamplingRow> rows,
                              std::vector<SampledToken>& out) {
  out.assign(rows.size(), SampledToken{});
  static const TokenHistory kNoHistory;
  thread_local std::vector<float> processed, scratch;
  for (size_t r = 0; r < rows.size(); ++r) {
    const SamplingParams& params = *rows[r].params;
    const absl::Span<const float> raw(logits + r * vocab, vocab);
    if (!IsDistribution(raw)) {
      out[r].token = kNonFiniteLogits;
      continue;
    }
    absl::Span<const float> row = raw;
    if (!params.logit_bias.empty() || params.HasPenalties()) {
      processed.assign(raw.begin(), raw.end());
      ApplyLogitsProcessors(absl::MakeSpan(processed), params,
                            rows[r].history != nullptr ? *rows[r].history : kNoHistory);
      row = processed;
    }
    out[r].token = SampleToken(row, params, rows[r].position, scratch);
    if (params.logprobs >= 0) out[r].logprobs = ComputeLogprobs(raw, out[r].token, params.logprobs);
  }
  return absl::OkStatus();
}

}  // namespace strata

#include <algorithm>

#include "worker/backend/backend.h"

namespace strata {

StepPlan PlanShape(const StepBatch& batch, std::vector<int32_t>& token_seq) {
  StepPlan p;
  p.num_tokens = batch.num_tokens();
  p.num_seqs = batch.num_seqs();
  p.max_blocks_per_seq = batch.max_blocks_per_seq;
  p.num_logit_rows = static_cast<int64_t>(batch.logit_rows.size());
  token_seq.assign(p.num_tokens, 0);
  for (int64_t s = 0; s < p.num_seqs; ++s) {
    const int32_t q0 = batch.query_start[s], q1 = batch.query_start[s + 1];
    std::fill(token_seq.begin() + q0, token_seq.begin() + q1, static_cast<int32_t>(s));
    p.max_query_len = std::max<int64_t>(p.max_query_len, q1 - q0);
    p.max_context_len = std::max<int64_t>(p.max_context_len, batch.context_lens[s]);
  }
  return p;
}

}  // namespace strata

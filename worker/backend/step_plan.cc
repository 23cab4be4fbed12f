#include <algorithm>
#include <cstring>

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

bool IsDecodeStep(const StepBatch& batch) {
  const int64_t n = batch.num_tokens();
  if (n < 1 || batch.num_seqs() != n || static_cast<int64_t>(batch.logit_rows.size()) != n) {
    return false;
  }
  for (int64_t i = 0; i < n; ++i) {
    if (batch.query_start[i + 1] != i + 1 || batch.logit_rows[i] != i) return false;
  }
  return true;
}

PaddedDecodeLayout::PaddedDecodeLayout(int64_t max_seqs, int64_t columns)
    : capacity(max_seqs), blocks(columns) {
  positions = capacity;
  slots = 2 * capacity;
  token_seq = 3 * capacity;
  query_start = 4 * capacity;
  context_lens = query_start + capacity + 1;
  logit_rows = context_lens + capacity;
  block_tables = logit_rows + capacity;
  size = block_tables + capacity * blocks;
}

void PackPaddedDecode(const StepBatch& batch, int64_t seqs, const PaddedDecodeLayout& layout,
                      int32_t* out) {
  const int64_t n = batch.num_seqs(), width = batch.max_blocks_per_seq;
  out[layout.query_start] = 0;
  for (int64_t s = 0; s < seqs; ++s) {
    const bool pad = s >= n;
    const auto index = static_cast<int32_t>(s);
    out[layout.tokens + s] = pad ? 0 : batch.tokens[s];
    out[layout.positions + s] = pad ? 0 : batch.positions[s];
    out[layout.slots + s] = pad ? -1 : batch.slot_mapping[s];
    out[layout.token_seq + s] = index;
    out[layout.query_start + s + 1] = index + 1;
    out[layout.context_lens + s] = pad ? 1 : batch.context_lens[s];
    out[layout.logit_rows + s] = index;
    int32_t* row = out + layout.block_tables + s * layout.blocks;
    if (pad || width == 0) {
      row[0] = 0;
    } else {
      std::memcpy(row, batch.block_tables.data() + s * width, width * sizeof(int32_t));
    }
  }
}

}  // namespace strata

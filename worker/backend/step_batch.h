// StepBatch: what one forward step computes, flattened for the kernels. A step holds any mix
// of sequences: some prefilling many tokens, some decoding one. Built by the coordinator's
// scheduler (or the offline generator) and validated by the worker before it runs.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace strata {

struct StepBatch {
  std::vector<int32_t> tokens;        // [num_tokens] token ids (used by the first stage)
  std::vector<int32_t> positions;     // [num_tokens]
  std::vector<int32_t> slot_mapping;  // [num_tokens] KV slot = block * block_size + offset
  std::vector<int32_t> query_start;   // [num_seqs + 1] row ranges of each sequence
  std::vector<int32_t> context_lens;  // [num_seqs] tokens in the cache after this step
  std::vector<int32_t> block_tables;  // [num_seqs, max_blocks_per_seq], -1 padded
  int32_t max_blocks_per_seq = 0;
  std::vector<int32_t> logit_rows;    // token rows whose logits the last stage returns

  int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }
  int64_t num_seqs() const { return static_cast<int64_t>(context_lens.size()); }

  // Appends a sequence that already has `num_cached` tokens in the cache and now processes
  // `new_tokens` at the following positions, with KV blocks `block_table` (which must cover
  // num_cached + new_tokens.size() tokens). With `all_logits` every new token's logits are
  // returned, else only the last one's.
  void AddSequence(absl::Span<const int32_t> new_tokens, int32_t num_cached,
                   absl::Span<const int32_t> block_table, int32_t block_size, bool all_logits);

  // Checks every index against the model and cache sizes; the message names the field.
  absl::Status Validate(int64_t vocab_size, int64_t max_positions, int64_t num_blocks,
                        int64_t block_size) const;
};

}  // namespace strata

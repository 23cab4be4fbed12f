#include "worker/backend/step_batch.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace strata {

void StepBatch::AddSequence(absl::Span<const int32_t> new_tokens, int32_t num_cached,
                            absl::Span<const int32_t> block_table, int32_t block_size,
                            bool all_logits) {
  if (query_start.empty()) query_start.push_back(0);
  const int32_t first_row = static_cast<int32_t>(tokens.size());
  const int32_t n = static_cast<int32_t>(new_tokens.size());
  // Positions and slots are computed in 64 bits: a hostile step may carry num_cached or block
  // ids near 2^31. What does not fit is stored as -1, which Validate rejects.
  const auto fit = [](int64_t v) { return v > INT32_MAX ? int32_t{-1} : static_cast<int32_t>(v); };
  for (int32_t i = 0; i < n; ++i) {
    const int64_t pos = int64_t{num_cached} + i;
    tokens.push_back(new_tokens[i]);
    positions.push_back(fit(pos));
    const int64_t block_index = pos / block_size;
    const int32_t block = block_index < static_cast<int64_t>(block_table.size())
                              ? block_table[block_index]
                              : -1;  // rejected by Validate
    slot_mapping.push_back(block < 0 ? -1 : fit(int64_t{block} * block_size + pos % block_size));
  }
  query_start.push_back(first_row + n);
  context_lens.push_back(fit(int64_t{num_cached} + n));

  // Re-pad the block tables when this sequence needs a wider row.
  const int32_t width = std::max<int32_t>(max_blocks_per_seq, static_cast<int32_t>(block_table.size()));
  if (width != max_blocks_per_seq) {
    std::vector<int32_t> wider(static_cast<size_t>(num_seqs() - 1) * width, -1);
    for (int64_t s = 0; s + 1 < num_seqs(); ++s) {
      std::copy_n(block_tables.begin() + s * max_blocks_per_seq, max_blocks_per_seq,
                  wider.begin() + s * width);
    }
    block_tables = std::move(wider);
    max_blocks_per_seq = width;
  }
  block_tables.resize(static_cast<size_t>(num_seqs()) * width, -1);
  std::copy(block_table.begin(), block_table.end(), block_tables.end() - width);

  if (all_logits) {
    for (int32_t r = first_row; r < first_row + n; ++r) logit_rows.push_back(r);
  } else if (n > 0) {
    logit_rows.push_back(first_row + n - 1);
  }
}

absl::Status StepBatch::Validate(int64_t vocab_size, int64_t max_positions, int64_t num_blocks,
                                 int64_t block_size) const {
  const int64_t n = num_tokens();
  if (static_cast<int64_t>(positions.size()) != n || static_cast<int64_t>(slot_mapping.size()) != n) {
    return absl::InvalidArgumentError("step: tokens, positions and slot_mapping differ in length");
  }
  if (query_start.size() != context_lens.size() + 1 || query_start.front() != 0 ||
      query_start.back() != n) {
    return absl::InvalidArgumentError("step: query_start must run from 0 to num_tokens");
  }
  if (static_cast<int64_t>(block_tables.size()) != num_seqs() * max_blocks_per_seq) {
    return absl::InvalidArgumentError("step: block_tables is not [num_seqs, max_blocks_per_seq]");
  }
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("step: token id ", tokens[i], " outside the vocabulary of ", vocab_size));
    }
    if (positions[i] < 0 || positions[i] >= max_positions) {
      return absl::InvalidArgumentError(absl::StrCat("step: position ", positions[i],
                                                     " outside the context of ", max_positions));
    }
    if (slot_mapping[i] < 0 || slot_mapping[i] >= num_blocks * block_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("step: KV slot ", slot_mapping[i], " of token row ", i,
                       " outside the cache of ", num_blocks, " blocks"));
    }
  }
  for (int64_t s = 0; s < num_seqs(); ++s) {
    const int32_t q0 = query_start[s], q1 = query_start[s + 1];
    if (q1 < q0 || context_lens[s] < q1 - q0) {
      return absl::InvalidArgumentError(absl::StrCat("step: sequence ", s, " has bad ranges"));
    }
    const int64_t needed = (context_lens[s] + block_size - 1) / block_size;
    if (needed > max_blocks_per_seq) {
      return absl::InvalidArgumentError(absl::StrCat(
          "step: sequence ", s, " needs ", needed, " blocks but its table has ", max_blocks_per_seq));
    }
    for (int64_t b = 0; b < needed; ++b) {
      const int32_t block = block_tables[s * max_blocks_per_seq + b];
      if (block < 0 || block >= num_blocks) {
        return absl::InvalidArgumentError(absl::StrCat("step: sequence ", s, " block ", block,
                                                       " outside the cache of ", num_blocks));
      }
    }
  }
  for (int32_t r : logit_rows) {
    if (r < 0 || r >= n) return absl::InvalidArgumentError("step: logit row out of range");
  }
  return absl::OkStatus();
}

}  // namespace strata

// Tensor-parallel sharding of a decoder: which heads, MLP columns and vocabulary rows one TP
// rank holds, and the host-side reassembly of vocab-parallel logits.
//
// Query heads split evenly; KV heads follow their query groups: with num_kv_heads >= tp each
// rank holds num_kv_heads / tp of them, otherwise each KV head is replicated on
// tp / num_kv_heads ranks. The MLP splits its intermediate dimension evenly. The vocabulary
// (embedding and lm_head rows) splits into slices of ceil(vocab / tp) rows, the last one
// shorter.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/model_config.h"

namespace strata {

// One rank's share of a model. Ranges are [begin, begin + count).
struct TpShard {
  int rank = 0;
  int size = 1;
  int64_t q_head_begin = 0, num_heads = 0;        // query heads
  int64_t kv_head_begin = 0, num_kv_heads = 0;    // KV heads (replicated when tp > kv heads)
  int64_t ffn_begin = 0, ffn_size = 0;            // columns of the intermediate dimension
  int64_t vocab_begin = 0, vocab_size = 0;        // embedding / lm_head rows
  int64_t vocab_stride = 0;                       // ceil(vocab / tp): every slice's padded size
};

// The shard of rank `rank` of `size`. InvalidArgument (naming the numbers) when `size` does
// not divide the heads or the intermediate size, when the KV heads neither divide nor are
// divided by `size`, or when some rank would hold no vocabulary rows.
absl::StatusOr<TpShard> PlanTpShard(const ModelConfig& config, int rank, int size);

// Reassembles full logits from an all-gather of padded vocab slices.
//   gathered: [shard.size, rows * shard.vocab_stride]; slice q holds rank q's logits as a
//             contiguous [rows, vocab_size_q] matrix followed by padding.
//   out: [rows, vocab_size].
void AssembleVocabSlices(const TpShard& shard, int64_t vocab_size, int64_t rows,
                         absl::Span<const float> gathered, absl::Span<float> out);

}  // namespace strata

// Tensor-parallel sharding: which heads, MLP columns, experts and vocabulary rows one rank of a
// TP group holds. This is the one home of the split rules: the layers load exactly these
// slices, and the shard planner sizes ranks by running the same layers in planning mode
// (footprint.h).
//
// Query heads split evenly; KV heads follow their query groups: with num_kv_heads >= size each
// rank holds num_kv_heads / size of them, otherwise each KV head is replicated on
// size / num_kv_heads ranks. MLP widths split evenly. The vocabulary (embedding and lm_head
// rows) splits into slices of ceil(vocab / size) rows, the last one shorter. Experts are
// either all on every rank with their FFN width split (tensor-parallel experts), or spread
// whole across the ranks (expert parallelism); either way the MoE output is a partial sum that
// the layer all-reduces, so tokens never move between ranks.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/model_config.h"

namespace strata {

// [begin, end).
struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

struct TpLayout {
  int rank = 0;
  int size = 1;
  bool expert_parallel = false;
  Range q_heads;
  Range kv_heads;
  Range vocab;
  int64_t vocab_stride = 0;  // ceil(vocab / size): every slice's padded size
  Range experts;             // routed experts on this rank (all without expert parallelism)

  // This rank's share of a width split evenly (width divisible by size: checked by
  // MakeTpLayout for every width of the config).
  Range Split(int64_t width) const {
    const int64_t part = width / size;
    return {rank * part, (rank + 1) * part};
  }
  // The FFN columns of one routed expert on this rank.
  Range ExpertFfn(int64_t width) const { return expert_parallel ? Range{0, width} : Split(width); }
};

// The layout of rank `rank` of `size`. FailedPrecondition naming the numbers when `size` does
// not divide the heads, an MLP or expert width or (expert parallel) the experts, when the KV
// heads neither divide nor are divided by `size`, or when a rank would hold no vocabulary.
absl::StatusOr<TpLayout> MakeTpLayout(const ModelConfig& config, int rank, int size,
                                      bool expert_parallel = false);

// Reassembles full logits from an all-gather of padded vocab slices.
//   gathered: [size, rows * vocab_stride]; slice q holds rank q's logits as a contiguous
//             [rows, vocab_size_q] matrix followed by padding.
//   out: [rows, vocab_size].
void AssembleVocabSlices(const TpLayout& tp, int64_t vocab_size, int64_t rows,
                         const float* gathered, float* out);

}  // namespace strata

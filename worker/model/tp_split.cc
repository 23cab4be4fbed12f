#include "worker/model/tp_split.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace strata {

absl::StatusOr<TpLayout> MakeTpLayout(const ModelConfig& c, int rank, int size,
                                      bool expert_parallel) {
  if (size < 1 || rank < 0 || rank >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor-parallel rank ", rank, " is not in a group of size ", size));
  }
  auto refuse = [&](const std::string& what) {
    return absl::FailedPreconditionError(
        absl::StrCat("tensor parallel size ", size, " does not divide ", what));
  };
  if (c.num_heads % size != 0) return refuse(absl::StrCat(c.num_heads, " attention heads"));
  if (c.num_kv_heads % size != 0 && size % c.num_kv_heads != 0) {
    return refuse(absl::StrCat(c.num_kv_heads, " KV heads (nor is it a multiple of them)"));
  }
  if (c.intermediate_size % size != 0) {
    return refuse(absl::StrCat("the MLP width ", c.intermediate_size));
  }
  if (c.IsMoe()) {
    if (expert_parallel && c.moe.num_experts % size != 0) {
      return refuse(absl::StrCat(c.moe.num_experts, " experts (expert parallelism)"));
    }
    if (!expert_parallel && c.moe.expert_intermediate_size % size != 0) {
      return refuse(absl::StrCat("the expert width ", c.moe.expert_intermediate_size));
    }
    const int64_t shared = c.moe.shared_intermediate_size();
    if (shared % size != 0) return refuse(absl::StrCat("the shared-expert width ", shared));
  }
  const int64_t group = c.quant.group_size;
  if (group > 0 && ((c.intermediate_size / size) % group != 0 ||
                    (c.num_heads / size * c.head_dim) % group != 0)) {
    return refuse(
        absl::StrCat("the row-parallel inputs into whole quantization groups of ", group));
  }
  TpLayout t;
  t.rank = rank;
  t.size = size;
  t.expert_parallel = expert_parallel && c.IsMoe();
  const int64_t heads = c.num_heads / size;
  t.q_heads = {rank * heads, (rank + 1) * heads};
  if (c.num_kv_heads >= size) {
    const int64_t kv = c.num_kv_heads / size;
    t.kv_heads = {rank * kv, (rank + 1) * kv};
  } else {
    const int64_t head = rank / (size / c.num_kv_heads);
    t.kv_heads = {head, head + 1};
  }
  t.vocab_stride = (c.vocab_size + size - 1) / size;
  t.vocab = {std::min(c.vocab_size, rank * t.vocab_stride),
             std::min(c.vocab_size, (rank + 1) * t.vocab_stride)};
  if ((size - 1) * t.vocab_stride >= c.vocab_size) {
    return absl::FailedPreconditionError(absl::StrCat(
        "tensor parallelism ", size, " leaves a rank without rows of the ", c.vocab_size,
        "-token vocabulary"));
  }
  if (c.IsMoe()) {
    const int64_t e = c.moe.num_experts;
    t.experts = t.expert_parallel ? Range{rank * e / size, (rank + 1) * e / size} : Range{0, e};
  }
  return t;
}

void AssembleVocabSlices(const TpLayout& tp, int64_t vocab_size, int64_t rows,
                         const float* gathered, float* out) {
  for (int q = 0; q < tp.size; ++q) {
    const int64_t begin = q * tp.vocab_stride;
    const int64_t width = std::min(vocab_size, begin + tp.vocab_stride) - begin;
    const float* slice = gathered + q * rows * tp.vocab_stride;
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(out + r * vocab_size + begin, slice + r * width, width * sizeof(float));
    }
  }
}

}  // namespace strata

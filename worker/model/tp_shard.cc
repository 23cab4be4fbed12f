#include "worker/model/tp_shard.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace strata {

absl::StatusOr<TpShard> PlanTpShard(const ModelConfig& config, int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor-parallel rank ", rank, " is not in a group of size ", size));
  }
  const int64_t heads = config.num_heads, kv_heads = config.num_kv_heads;
  const int64_t ffn = config.intermediate_size, vocab = config.vocab_size;
  if (heads % size != 0 || ffn % size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor parallelism ", size, " must divide the ", heads,
        " attention heads and the intermediate size ", ffn));
  }
  if (kv_heads % size != 0 && size % kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("tensor parallelism ", size, " and the ",
                                                   kv_heads,
                                                   " KV heads must divide one another"));
  }
  TpShard s;
  s.rank = rank;
  s.size = size;
  s.num_heads = heads / size;
  s.q_head_begin = rank * s.num_heads;
  if (kv_heads >= size) {
    s.num_kv_heads = kv_heads / size;
    s.kv_head_begin = rank * s.num_kv_heads;
  } else {
    s.num_kv_heads = 1;
    s.kv_head_begin = rank / (size / kv_heads);
  }
  s.ffn_size = ffn / size;
  s.ffn_begin = rank * s.ffn_size;
  s.vocab_stride = (vocab + size - 1) / size;
  s.vocab_begin = std::min(vocab, rank * s.vocab_stride);
  s.vocab_size = std::min(vocab, s.vocab_begin + s.vocab_stride) - s.vocab_begin;
  if ((size - 1) * s.vocab_stride >= vocab) {
    return absl::InvalidArgumentError(absl::StrCat("tensor parallelism ", size,
                                                   " leaves a rank without rows of the ",
                                                   vocab, "-token vocabulary"));
  }
  return s;
}

void AssembleVocabSlices(const TpShard& shard, int64_t vocab_size, int64_t rows,
                         absl::Span<const float> gathered, absl::Span<float> out) {
  for (int q = 0; q < shard.size; ++q) {
    const int64_t begin = q * shard.vocab_stride;
    const int64_t width = std::min(vocab_size, begin + shard.vocab_stride) - begin;
    const float* slice = gathered.data() + q * rows * shard.vocab_stride;
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(out.data() + r * vocab_size + begin, slice + r * width, width * sizeof(float));
    }
  }
}

}  // namespace strata

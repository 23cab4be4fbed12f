// Distributed argmax for vocab-parallel greedy decoding: one all-gather of (value, id) pairs,
// then the same deterministic merge on every rank.
#include "worker/comm/communicator.h"

#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace strata {
namespace {

// True when candidate `a` beats `b`: larger value, or equal value and lower id. NaN loses to
// everything; an id of -1 (empty slice) loses to any real id.
bool Beats(const ArgmaxResult& a, const ArgmaxResult& b) {
  if (a.id < 0) return false;
  if (b.id < 0) return true;
  if (std::isnan(a.value)) return false;
  if (std::isnan(b.value)) return true;
  if (a.value != b.value) return a.value > b.value;
  return a.id < b.id;
}

}  // namespace

ArgmaxResult LocalArgmax(const float* logits, int32_t vocab_begin, int32_t vocab_end) {
  ArgmaxResult best{-std::numeric_limits<float>::infinity(), -1};
  for (int32_t id = vocab_begin; id < vocab_end; ++id) {
    const ArgmaxResult candidate{logits[id - vocab_begin], id};
    if (Beats(candidate, best)) best = candidate;
  }
  return best;
}

absl::StatusOr<ArgmaxResult> DistributedArgmax(Communicator& comm, const float* logits,
                                               int32_t vocab_begin, int32_t vocab_end) {
  if (comm.device_memory()) {
    return absl::FailedPreconditionError(
        "DistributedArgmax: needs a host-memory communicator (logits on the host)");
  }
  if (vocab_begin < 0 || vocab_end < vocab_begin) {
    return absl::InvalidArgumentError(absl::StrCat("DistributedArgmax: rank ", comm.rank(),
                                                   " has invalid vocab slice [", vocab_begin,
                                                   ", ", vocab_end, ")"));
  }
  const ArgmaxResult local = LocalArgmax(logits, vocab_begin, vocab_end);
  const float mine[2] = {local.value, std::bit_cast<float>(local.id)};  // [2] = (value, id)
  std::vector<float> all(2 * static_cast<size_t>(comm.world_size()));  // [world, 2]
  STRATA_RETURN_IF_ERROR(comm.AllGather(mine, 2, all.data()));
  ArgmaxResult best{-std::numeric_limits<float>::infinity(), -1};
  for (int r = 0; r < comm.world_size(); ++r) {
    const ArgmaxResult candidate{all[2 * r], std::bit_cast<int32_t>(all[2 * r + 1])};
    if (Beats(candidate, best)) best = candidate;
  }
  return best;
}

}  // namespace strata

// What the penalties need to know of one sequence's tokens; kept by the sampling rank.
#pragma once

#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

namespace strata {

class TokenHistory {
 public:
  void Add(int32_t token, bool output) {
    seen_.insert(token);
    if (output) ++output_counts_[token];
  }
  void Clear() {
    seen_.clear();
    output_counts_.clear();
  }
  const absl::flat_hash_set<int32_t>& seen() const { return seen_; }  // prompt and output
  const absl::flat_hash_map<int32_t, int32_t>& output_counts() const { return output_counts_; }

 private:
  absl::flat_hash_set<int32_t> seen_;
  absl::flat_hash_map<int32_t, int32_t> output_counts_;
};

}  // namespace strata

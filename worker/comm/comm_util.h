// Pieces every Communicator implementation shares: argument checks at the API edge and the
// sticky first error that makes a failed communicator refuse further calls.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace strata::comm_internal {

// "<backend> <op> (rank R of W[, peer P])": the prefix of every error message.
std::string OpContext(const char* backend, const char* op, int rank, int world, int peer = -1);

// n >= 0 and a non-null pointer when n > 0.
absl::Status CheckCount(const std::string& context, int64_t n, const void* data);

// 0 <= peer < world and, when `allow_self` is false, peer != rank.
absl::Status CheckRank(const std::string& context, const char* what, int peer, int rank,
                       int world, bool allow_self);

// Holds the first error a communicator hit. A collective that failed part-way leaves peers
// mid-operation, so the group cannot be reused: later calls fail with the original cause.
class ErrorLatch {
 public:
  // FailedPrecondition quoting the first error once one was recorded, else OK.
  absl::Status CheckUsable(const std::string& context) const;

  // Records `status` if it is the first error; returns it unchanged.
  absl::Status Record(absl::Status status);

 private:
  absl::Status first_error_;
};

}  // namespace strata::comm_internal

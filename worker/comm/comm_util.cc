#include "worker/comm/comm_util.h"

#include "absl/strings/str_cat.h"

namespace strata::comm_internal {

std::string OpContext(const char* backend, const char* op, int rank, int world, int peer) {
  std::string out = absl::StrCat(backend, " ", op, " (rank ", rank, " of ", world);
  if (peer >= 0) absl::StrAppend(&out, ", peer ", peer);
  out += ")";
  return out;
}

absl::Status CheckCount(const std::string& context, int64_t n, const void* data) {
  if (n < 0) return absl::InvalidArgumentError(absl::StrCat(context, ": count ", n, " < 0"));
  if (n > 0 && data == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": null buffer for ", n, " floats"));
  }
  return absl::OkStatus();
}

absl::Status CheckRank(const std::string& context, const char* what, int peer, int rank,
                       int world, bool allow_self) {
  if (peer < 0 || peer >= world) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": ", what, " ", peer, " is not in [0, ", world, ")"));
  }
  if (!allow_self && peer == rank) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": ", what, " ", peer, " is this rank itself"));
  }
  return absl::OkStatus();
}

absl::Status ErrorLatch::CheckUsable(const std::string& context) const {
  if (first_error_.ok()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      context, ": communicator is broken by an earlier error: ", first_error_.ToString()));
}

absl::Status ErrorLatch::Record(absl::Status status) {
  if (!status.ok() && first_error_.ok()) first_error_ = status;
  return status;
}

}  // namespace strata::comm_internal

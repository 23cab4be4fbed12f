// Status helpers. Abseil 20220623 (Debian bookworm) has absl::Status/StatusOr but neither
// absl/log nor the status macros, so the few Strata needs live here.
//
//   STRATA_RETURN_IF_ERROR(expr);              // returns expr's Status when it is not OK
//   STRATA_ASSIGN_OR_RETURN(auto x, expr);     // unwraps a StatusOr or returns its Status
//   STRATA_CHECK(cond) << "context";           // programmer-error invariant: aborts
#pragma once

#include <cstdlib>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define STRATA_CONCAT_INNER_(a, b) a##b
#define STRATA_CONCAT_(a, b) STRATA_CONCAT_INNER_(a, b)

#define STRATA_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::absl::Status strata_status_ = (expr);          \
    if (!strata_status_.ok()) return strata_status_; \
  } while (0)

#define STRATA_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = std::move(tmp).value()

#define STRATA_ASSIGN_OR_RETURN(lhs, expr) \
  STRATA_ASSIGN_OR_RETURN_IMPL_(STRATA_CONCAT_(strata_statusor_, __LINE__), lhs, expr)

namespace strata::internal {

// Collects a CHECK failure message and aborts when destroyed.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition);
  [[noreturn]] ~CheckFailure();
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

// Lets `STRATA_CHECK(x) << ...` compile to a void expression on the success path.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace strata::internal

#define STRATA_CHECK(cond)                   \
  (cond) ? (void)0                           \
         : ::strata::internal::Voidify() &   \
               ::strata::internal::CheckFailure(__FILE__, __LINE__, #cond).stream()

#define STRATA_CHECK_OK(expr)                                           \
  do {                                                                  \
    ::absl::Status strata_check_status_ = (expr);                       \
    STRATA_CHECK(strata_check_status_.ok()) << strata_check_status_;    \
  } while (0)

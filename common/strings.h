// Debian bookworm's Abseil (20220623) is built with its own absl::string_view, distinct from
// std::string_view, so absl::StrCat and friends do not accept a std::string_view. Strata's
// APIs use std::string_view; these convert at the call sites that format messages.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace strata {

inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view StdSv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace strata

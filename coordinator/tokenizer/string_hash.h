// Transparent hash/equality for absl containers keyed by std::string but looked up with
// std::string_view. Debian's Abseil has its own absl::string_view, so its default string hasher
// does not accept std::string_view look-ups.
#pragma once

#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"

namespace strata::tokenizer {

struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return absl::Hash<std::string_view>()(s); }
};

struct StringViewEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

// std::string -> V, looked up by std::string_view.
template <typename V>
using StringMap = absl::flat_hash_map<std::string, V, StringViewHash, StringViewEq>;

}  // namespace strata::tokenizer

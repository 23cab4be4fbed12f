// Boost.JSON at the formats edge: parsing without exceptions, and integer extraction that
// accepts only exact non-negative integers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "boost/json.hpp"

namespace strata::formats_internal {

// Parses `text` as a JSON object; errors name `path` and `what` ("header", "index").
absl::StatusOr<boost::json::object> ParseJsonObject(const std::string& path, absl::string_view what,
                                                    std::string_view text);

// The value as a non-negative int64, or nullopt for anything else (doubles, negatives, > 2^63).
std::optional<int64_t> AsNonNegativeInt(const boost::json::value& v);

}  // namespace strata::formats_internal

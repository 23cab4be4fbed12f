// JSON files at the edges (config.json, safetensors headers, tokenizer.json, ...): reading,
// parsing without exceptions into an object, and integer extraction that accepts only exact
// non-negative integers. Errors name the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "boost/json.hpp"

namespace strata {

// The bytes of `path`; NotFound naming it when it cannot be opened.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);


// Parses `text` as a JSON object; errors name `path` and `what` ("header", "index").
absl::StatusOr<boost::json::object> ParseJsonObject(const std::string& path, absl::string_view what,
                                                    std::string_view text);

// The value as a non-negative int64, or nullopt for anything else (doubles, negatives, > 2^63).
std::optional<int64_t> AsNonNegativeInt(const boost::json::value& v);

}  // namespace strata

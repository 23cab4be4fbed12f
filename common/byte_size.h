// Byte counts as people write and read them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace strata {

// Parses "80GiB", "80GB", "512MiB", "1.5TiB" or a plain byte count.
absl::StatusOr<int64_t> ParseByteSize(std::string_view text);

// "79.5 GiB"
std::string FormatBytes(int64_t bytes);

}  // namespace strata

// Running the JavaScript reference implementations (tests/node: @huggingface/jinja,
// @huggingface/transformers, ...) from C++ tests. A test writes its request as JSON, the
// script answers with JSON on stdout.
//
// The packages are installed by scripts/setup.sh. When node or the packages are missing the
// test skips, unless STRATA_REQUIRE_SHARED_DATA=1 (CI), where it fails.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace strata::testing {

// tests/node inside the source tree, if its node_modules are installed and `node` runs.
std::optional<std::filesystem::path> FindNodeReferences();

// Runs `node tests/node/<script> <request file>` with `request_json` in the request file and
// returns the script's stdout. A non-zero exit is an error carrying the script's stderr.
absl::StatusOr<std::string> RunNodeReference(const std::string& script,
                                             const std::string& request_json);

}  // namespace strata::testing

// Use at the top of a test that needs the JavaScript references.
#define STRATA_NODE_REFERENCES_OR_SKIP()                                                   \
  if (!::strata::testing::FindNodeReferences()) {                                          \
    if (::strata::testing::SharedDataRequired()) {                                         \
      FAIL() << "tests/node references not installed (run scripts/setup.sh)";              \
    }                                                                                      \
    GTEST_SKIP() << "tests/node references not installed (run scripts/setup.sh)";          \
  }

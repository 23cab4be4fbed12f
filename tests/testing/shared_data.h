// Locating ../shared/data (real models, tokenizers and golden outputs) from tests.
//
// The folder is STRATA_SHARED_DATA if set, else ../shared/data beside the source tree
// (STRATA_SOURCE_DIR is set by CTest). When it is missing, tests skip, unless
// STRATA_REQUIRE_SHARED_DATA=1 (CI), where they fail.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "gtest/gtest.h"

namespace strata::testing {

// The shared data folder, or nullopt when it cannot be found.
std::optional<std::filesystem::path> FindSharedData();

// True when CI demands the shared data (STRATA_REQUIRE_SHARED_DATA=1).
bool SharedDataRequired();

// A file or folder under ../shared/data, decompressing `*.xz` files into a temporary folder
// (given the relative path without `.xz`, e.g. "tokenizers/hf/llama3/tokenizer.json", when only
// the .xz exists). Empty path when not found.
std::filesystem::path SharedDataPath(const std::string& relative);

// The source tree: STRATA_SOURCE_DIR (set by CTest), else the one this was built from.
std::filesystem::path SourceDir();

// A fresh temporary folder for one test, removed at process exit.
std::filesystem::path TempDir(const std::string& name);

}  // namespace strata::testing

// Use at the top of a test that needs ../shared/data:
//   STRATA_REQUIRE_SHARED_DATA_OR_SKIP(path, "models/stories260K/hf");
#define STRATA_SHARED_DATA_OR_SKIP(var, relative)                                         \
  const std::filesystem::path var = ::strata::testing::SharedDataPath(relative);          \
  if (var.empty()) {                                                                      \
    if (::strata::testing::SharedDataRequired()) {                                        \
      FAIL() << "shared data '" << (relative)                                             \
             << "' not found (STRATA_REQUIRE_SHARED_DATA=1); set STRATA_SHARED_DATA";     \
    }                                                                                     \
    GTEST_SKIP() << "shared data '" << (relative) << "' not found";                       \
  }

// The `strata` binary under test: $STRATA_BINARY when set, else the build's (test targets
// define STRATA_BINARY_PATH).
#pragma once

#include <cstdlib>
#include <string>

namespace strata::testing {

inline std::string StrataBinary() {
  const char* path = std::getenv("STRATA_BINARY");
  if (path != nullptr) return path;
#ifdef STRATA_BINARY_PATH
  return STRATA_BINARY_PATH;
#else
  return "";
#endif
}

}  // namespace strata::testing

// The `strata` binary under test: $STRATA_BINARY when set, else the build's (test targets
// define STRATA_BINARY_PATH).
#pragma once

#include <sys/wait.h>

#include <cstdio>
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

// One run of `strata ARGS` to its exit (killed after 60 s): its exit code (-1 when it did not
// exit normally; 124 when the timeout ended it) and its stdout and stderr.
struct StrataRun {
  int code = -1;
  std::string output;
};
inline StrataRun RunStrata(const std::string& args) {
  StrataRun run;
  FILE* pipe = popen(("timeout 60 " + StrataBinary() + " " + args + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return run;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) run.output.append(buffer, n);
  const int status = pclose(pipe);
  run.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

}  // namespace strata::testing

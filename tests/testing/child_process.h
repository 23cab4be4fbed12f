// A program run as a child of the test: its stdout and stderr go to a log file the test can
// read, it dies with the test (PR_SET_PDEATHSIG), and its destructor stops it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace strata::testing {

class ChildProcess {
 public:
  // Runs argv[0] (a path) with `argv`, logging to `log`.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(std::vector<std::string> argv,
                                                             std::filesystem::path log);
  ~ChildProcess();  // Stop()
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }  // -1 once reaped
  // Everything the process has logged so far.
  std::string Log() const;
  // SIGTERM, SIGKILL after `grace`; returns the exit status (as waitpid's) or -1.
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  // Waits up to `timeout` for the process to end by itself: its exit status (as waitpid's),
  // or -1 while it still runs.
  int Wait(std::chrono::milliseconds timeout);

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  std::filesystem::path log_;
};

}  // namespace strata::testing

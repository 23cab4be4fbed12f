// `strata serve` as a user runs it, for integration tests: a child process serving the HTTP
// API on an ephemeral 127.0.0.1 port, its log captured in a file the test can read.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/testing/child_process.h"

namespace strata::testing {

class ServeProcess {
 public:
  // Runs `strata serve --http 127.0.0.1:0 --listen 127.0.0.1:0 <args>` and waits (up to
  // `timeout`) until it logs its HTTP port (which it does once its cluster is loaded) and
  // /health answers 200. /ready is not asked: on a fresh server it runs a probe generation,
  // and tests of a server's first request must not have one before it. The error carries
  // the log.
  static absl::StatusOr<std::unique_ptr<ServeProcess>> Start(
      const std::vector<std::string>& args,
      std::chrono::seconds timeout = std::chrono::seconds(60));
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return process_->pid(); }
  // Everything the process has logged so far.
  std::string Log() const { return process_->Log(); }
  // SIGTERM, SIGKILL after `grace`; returns the exit status (as waitpid's) or -1.
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(10)) {
    return process_->Stop(grace);
  }
  // Waits up to `timeout` for the process to end by itself: its exit status (as waitpid's),
  // or -1 while it still runs.
  int Wait(std::chrono::milliseconds timeout) { return process_->Wait(timeout); }
  // Its worker processes: its children that are alive (not zombies).
  std::vector<pid_t> Workers() const;

 private:
  ServeProcess() = default;
  std::unique_ptr<ChildProcess> process_;  // stopped by its destructor
  int port_ = 0;
};

}  // namespace strata::testing

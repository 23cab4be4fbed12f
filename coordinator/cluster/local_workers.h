// LocalWorkers: `strata worker` processes on this machine, started by `strata serve` (the
// one-machine default) and by tests. Each child asks the kernel to SIGTERM it when its parent
// dies (PR_SET_PDEATHSIG), so even a SIGKILLed `strata serve` leaves no workers behind; Stop()
// (and the destructor) sends SIGTERM, waits, then SIGKILLs and reaps.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace strata {

class LocalWorkers {
 public:
  // Starts `count` children, each running `binary` with `args` (argv[1...]). The children
  // inherit stdout and stderr. Internal error when fork or exec fails (a failed exec shows up
  // as the child exiting with code 127).
  static absl::StatusOr<std::unique_ptr<LocalWorkers>> Spawn(const std::string& binary,
                                                             const std::vector<std::string>& args,
                                                             int count);
  ~LocalWorkers();
  LocalWorkers(const LocalWorkers&) = delete;
  LocalWorkers& operator=(const LocalWorkers&) = delete;

  // SIGTERM to every child still running, SIGKILL after `grace`, reap all. Idempotent.
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(3));

  const std::vector<pid_t>& pids() const { return pids_; }
  // Sends `signal` to child `index` (tests: SIGKILL, SIGSTOP, SIGCONT).
  void Signal(int index, int signal) const;
  // How many children have exited so far (reaps without blocking).
  int Exited();

  // This executable's path (/proc/self/exe), to start workers of the same build.
  static std::string SelfPath();

 private:
  LocalWorkers() = default;
  std::vector<pid_t> pids_;
  std::vector<bool> reaped_;
};

}  // namespace strata

// LocalWorkers: `strata worker` processes on this machine, started by `strata serve` (the
// one-machine default) and by tests. Each child asks the kernel to SIGTERM it when its parent
// dies (PR_SET_PDEATHSIG), so even a SIGKILLed `strata serve` leaves no workers behind; Stop()
// (and the destructor) sends SIGTERM, waits, then SIGKILLs and reaps.
//
// Supervise() makes them self-healing: a child that exits or is killed (for any reason but
// Stop) is reaped and started again after a backoff that doubles with each restart; the
// coordinator sees a new worker register and reloads the group. A child that needs more than
// `max_restarts` restarts within `window` is crash-looping: it stays down and `on_crash_loop`
// runs once, with a message naming it and how it last ended.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace strata {

struct RestartPolicy {
  std::chrono::milliseconds first_backoff{250};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(8)};
  int max_restarts = 5;  // of one child within `window`
  std::chrono::milliseconds window{std::chrono::minutes(2)};
};

class LocalWorkers {
 public:
  // Starts `count` children, each running `binary` with `args` (argv[1...]). The children
  // inherit stdout and stderr. Internal error when fork or exec fails (a failed exec shows up
  // as the child exiting with code 127).
  static absl::StatusOr<std::unique_ptr<LocalWorkers>> Spawn(const std::string& binary,
                                                             const std::vector<std::string>& args,
                                                             int count);
  // As above, child i (and its restarts) getting `per_child(i)` after `args` (e.g. its GPU).
  static absl::StatusOr<std::unique_ptr<LocalWorkers>> Spawn(
      const std::string& binary, const std::vector<std::string>& args, int count,
      const std::function<std::vector<std::string>(int index)>& per_child);
  ~LocalWorkers();
  LocalWorkers(const LocalWorkers&) = delete;
  LocalWorkers& operator=(const LocalWorkers&) = delete;

  // Restarts children that end, from now until Stop(). `on_crash_loop` runs on the supervising
  // thread and must not call Stop() itself.
  void Supervise(RestartPolicy policy, std::function<void(const absl::Status&)> on_crash_loop);

  // SIGTERM to every child still running, SIGKILL after `grace`, reap all. Idempotent.
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(3));

  // The current process of each child (a restarted child has a new one).
  std::vector<pid_t> pids() const;
  // Sends `signal` to child `index` (tests: SIGKILL, SIGSTOP, SIGCONT).
  void Signal(int index, int signal) const;
  // How many children have exited and not been restarted (reaps without blocking).
  int Exited();
  // Restarts so far, all children together.
  int restarts() const;

  // This executable's path (/proc/self/exe), to start workers of the same build.
  static std::string SelfPath();

 private:
  struct Child {
    std::vector<std::string> argv;  // the binary and its arguments
    pid_t pid = -1;
    bool reaped = false;
    std::string last_exit;  // how it last ended, e.g. "killed by signal 9"
    std::deque<std::chrono::steady_clock::time_point> restarts;  // within the policy window
    std::chrono::steady_clock::time_point restart_at;            // when reaped and due
    bool given_up = false;
  };

  LocalWorkers() = default;
  absl::Status StartChild(Child& child);  // under mu_
  bool ReapLocked(Child& child);          // true when it has exited (now or before)
  void SuperviseLoop(RestartPolicy policy, std::function<void(const absl::Status&)> on_crash_loop);

  pid_t parent_ = -1;
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  std::vector<Child> children_;
  int total_restarts_ = 0;
  bool stopping_ = false;
  std::thread supervisor_;
};

}  // namespace strata

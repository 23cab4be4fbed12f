// Membership: the coordinator's registry of workers.
//
// Workers register (getting an id), then heartbeat. A background reaper marks a worker dead
// once its last heartbeat is older than the lease; it checks every `check_interval`, so a
// silent worker is dead within lease + check_interval. Dead workers stay listed (an operator
// sees what went missing), the most recently seen `max_dead_listed` of them: workers restarted
// on new ports must not grow the registry for the life of the cluster. Re-registering from the
// same host, or with the same id, reuses the entry and makes it alive again. Observers wait
// for "N workers alive" with a deadline.
//
// Thread-safe: every method may be called from any thread (the gRPC handlers do).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "proto/cluster_protocol.h"

namespace strata {

struct MembershipOptions {
  // How often workers should heartbeat (told to them in RegisterReply).
  std::chrono::milliseconds heartbeat_interval{1000};
  // A worker silent this long is dead.
  std::chrono::milliseconds lease{5000};
  // How often the reaper looks for expired leases.
  std::chrono::milliseconds check_interval{250};
  // Dead workers kept listed; beyond this the longest silent are forgotten.
  size_t max_dead_listed = 64;
};

// One registered worker, as the registry saw it at a point in time.
struct WorkerInfo {
  uint64_t id = 0;
  std::string host;
  DeviceInventory inventory;
  std::string status;  // from the last heartbeat
  bool alive = false;
  std::chrono::steady_clock::time_point last_heartbeat;
};

class Membership {
 public:
  // Starts the reaper thread. Options must have positive durations (CHECKed).
  explicit Membership(MembershipOptions options = {});
  // Stops the reaper and wakes every waiter.
  ~Membership();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Adds or revives a worker and returns its id. `requested_id` (0 = none) is honoured when it
  // names this host's entry or is free (a worker re-registering with a restarted coordinator
  // keeps its id); otherwise a known `host` keeps its old id, and a new host gets a fresh one.
  // The caller has validated the fields.
  uint64_t Register(uint64_t requested_id, const std::string& host, DeviceInventory inventory);

  // The secret of `id`'s current registration (fresh random bytes at each Register), or ""
  // when it is unknown.
  std::string SessionToken(uint64_t id) const;
  // True when `id` is alive and `token` is its registration's secret (compared in constant
  // time): who may use the rendezvous store.
  bool Admits(uint64_t id, std::string_view token) const;

  // Records a heartbeat. False when `id` is unknown or already dead: the worker must register
  // again (its peers may have moved on).
  bool Heartbeat(uint64_t id, const std::string& status);

  // Declares a worker dead before its lease runs out (its connection broke, or it stopped
  // answering steps). A worker that is in fact alive learns it at its next heartbeat and
  // registers again.
  void MarkDead(uint64_t id, const std::string& reason);

  int AliveCount() const;
  std::vector<WorkerInfo> Snapshot() const;  // ordered by id

  // Returns OK once at least `count` workers are alive; DeadlineExceeded (saying how many are)
  // after `timeout`; Cancelled if the registry is destroyed meanwhile.
  absl::Status WaitForAlive(int count, std::chrono::milliseconds timeout) const;

  const MembershipOptions& options() const { return options_; }

 private:
  void ReapLoop();
  int AliveCountLocked() const;
  void ForgetOldestDeadLocked();

  const MembershipOptions options_;
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;  // membership or liveness changed, or stopping
  std::map<uint64_t, WorkerInfo> workers_;
  std::map<uint64_t, std::string> tokens_;  // each registration's secret (kept out of WorkerInfo)
  uint64_t next_id_ = 1;
  bool stopping_ = false;
  std::thread reaper_;
};

}  // namespace strata

// RendezvousStore: the coordinator's in-memory key-value store behind the StoreSet / StoreGet /
// StoreAdd RPCs, where ranks of a collective group publish and read their bootstrap data (the
// NCCL unique id, Gloo addresses). Same semantics as worker/comm/store.h's KeyValueStore:
// values are opaque bytes, Get waits for the key, Add keeps a decimal counter.
//
// Keys under a load's generation prefix ("g<N>/", proto/cluster_protocol.h) are forgotten once a
// key of generation N + 2 is written: a reload's groups never read an older generation's
// addresses, and a coordinator whose workers keep failing must not keep them all.
//
// Thread-safe. Close() wakes every waiting Get (with Unavailable) so a server can stop
// promptly while clients are blocked.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace strata {

class RendezvousStore {
 public:
  // Publishes `value` under `key`, replacing any earlier value, and wakes its waiters.
  void Set(const std::string& key, std::string value);

  // The value under `key`, waiting up to `timeout` for it to appear. DeadlineExceeded naming
  // the key after the timeout; Cancelled when `cancelled()` turns true (checked every few
  // tens of milliseconds, e.g. the RPC's client went away); Unavailable after Close().
  absl::StatusOr<std::string> Get(const std::string& key, std::chrono::milliseconds timeout,
                                  const std::function<bool()>& cancelled = nullptr);

  // Adds `delta` to the decimal counter under `key` (absent = 0) and returns the new value.
  // FailedPrecondition when the key holds something that is not a decimal integer;
  // OutOfRange on overflow.
  absl::StatusOr<int64_t> Add(const std::string& key, int64_t delta);

  // Fails current and future Gets with Unavailable.
  void Close();

  size_t size() const;

 private:
  void ForgetOldGenerationsLocked(const std::string& written_key);

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, std::string> values_;
  bool closed_ = false;
  uint64_t newest_generation_ = 0;
};

}  // namespace strata

// Key-value store used for rendezvous: ranks publish addresses or ids under keys and block
// until their peers' keys appear.
//
// KeyValueStore is the interface the communicators use; FileStore implements it over a shared
// directory (local multi-process runs and tests). The coordinator's store RPC will implement the
// same interface, so nothing here names a transport.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace strata {

// A rendezvous store shared by all ranks of a group. Values are opaque bytes. Keys are written
// once by one rank and read by the others (Add counters are the exception). Implementations are
// safe to use from several threads and several processes at once.
class KeyValueStore {
 public:
  virtual ~KeyValueStore() = default;

  // Publishes `value` under `key`, replacing any earlier value. Readers see either the old or the
  // new value in full, never a partial write.
  virtual absl::Status Set(const std::string& key, const std::string& value) = 0;

  // Returns the value under `key`, waiting until some rank sets it. DeadlineExceeded (naming the
  // key and the wait) when it is still absent after `timeout`.
  virtual absl::StatusOr<std::string> Get(const std::string& key,
                                          std::chrono::milliseconds timeout) = 0;

  // Atomically adds `delta` to the decimal counter under `key` (absent = 0) and returns the new
  // value. Get on a counter key returns its decimal text.
  virtual absl::StatusOr<int64_t> Add(const std::string& key, int64_t delta) = 0;
};

// KeyValueStore over a directory every rank can see (a local temp dir, or a shared volume with
// atomic rename). Each key is one file, written to a temporary name and renamed into place; Get
// polls for the file with a short backoff; Add holds an flock on a per-key lock file.
class FileStore : public KeyValueStore {
 public:
  // Uses (and creates, if needed) `dir`. Creation errors surface on the first call.
  explicit FileStore(std::filesystem::path dir);

  absl::Status Set(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::string> Get(const std::string& key,
                                  std::chrono::milliseconds timeout) override;
  absl::StatusOr<int64_t> Add(const std::string& key, int64_t delta) override;

  const std::filesystem::path& dir() const { return dir_; }

 private:
  // The file that holds `key` (the key escaped to a safe file name).
  std::filesystem::path PathFor(const std::string& key) const;

  std::filesystem::path dir_;
};

}  // namespace strata

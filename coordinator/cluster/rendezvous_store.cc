// RendezvousStore: a map under one mutex; Get waits on a condition variable in short slices
// so it can notice a cancelled RPC.
#include "coordinator/cluster/rendezvous_store.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace strata {
namespace {

constexpr std::chrono::milliseconds kCancelPoll(50);

// N for a key "g<N>/...", else nullopt.
std::optional<uint64_t> GenerationOf(const std::string& key) {
  const size_t slash = key.find('/');
  uint64_t generation = 0;
  if (key.size() < 3 || key[0] != 'g' || slash == std::string::npos ||
      !absl::SimpleAtoi(key.substr(1, slash - 1), &generation)) {
    return std::nullopt;
  }
  return generation;
}

}  // namespace

void RendezvousStore::ForgetOldGenerationsLocked(const std::string& written_key) {
  const std::optional<uint64_t> generation = GenerationOf(written_key);
  if (!generation || *generation <= newest_generation_) return;
  newest_generation_ = *generation;
  for (auto it = values_.begin(); it != values_.end();) {
    const std::optional<uint64_t> g = GenerationOf(it->first);
    it = g && *g + 1 < newest_generation_ ? values_.erase(it) : std::next(it);
  }
}

void RendezvousStore::Set(const std::string& key, std::string value) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    values_[key] = std::move(value);
    ForgetOldGenerationsLocked(key);
  }
  changed_.notify_all();
}

absl::StatusOr<std::string> RendezvousStore::Get(const std::string& key,
                                                 std::chrono::milliseconds timeout,
                                                 const std::function<bool()>& cancelled) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (closed_) return absl::UnavailableError("the coordinator's store is shutting down");
    auto it = values_.find(key);
    if (it != values_.end()) return it->second;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("store key '", key, "' was not set within ", timeout.count(), " ms"));
    }
    if (cancelled && cancelled()) {
      return absl::CancelledError(absl::StrCat("wait for store key '", key, "' was cancelled"));
    }
    changed_.wait_until(lock, std::min(deadline, now + kCancelPoll));
  }
}

absl::StatusOr<int64_t> RendezvousStore::Add(const std::string& key, int64_t delta) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t value = 0;
  auto it = values_.find(key);
  if (it != values_.end() && !absl::SimpleAtoi(it->second, &value)) {
    return absl::FailedPreconditionError(
        absl::StrCat("store key '", key, "' holds a value that is not a counter"));
  }
  if (__builtin_add_overflow(value, delta, &value)) {
    return absl::OutOfRangeError(absl::StrCat("store counter '", key, "' would overflow"));
  }
  values_[key] = absl::StrCat(value);
  ForgetOldGenerationsLocked(key);
  changed_.notify_all();
  return value;
}

void RendezvousStore::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  changed_.notify_all();
}

size_t RendezvousStore::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return values_.size();
}

}  // namespace strata

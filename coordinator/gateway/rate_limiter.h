// Per-key limits on requests and tokens per minute, as token buckets refilled continuously
// (a key may burst its whole minute, then gets its rate). Requests are taken when they arrive;
// tokens are charged when a request ends, with what it really used (prompt and completion), so
// a request is admitted while its key's token balance is not in debt and a key that overdrew
// waits until the balance recovers. Keys are the gateway's key ids (configured keys only, so
// the map is bounded). Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace strata::gateway {

struct RateLimits {
  int64_t requests_per_minute = 0;  // per key; 0: no limit
  int64_t tokens_per_minute = 0;    // per key; 0: no limit
};

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RateLimiter(RateLimits limits) : limits_(limits) {}

  bool enabled() const { return limits_.requests_per_minute > 0 || limits_.tokens_per_minute > 0; }

  // Admits one request of `key`, or says how long until one would be admitted: its requests
  // per minute are spent, or its token balance is in debt.
  struct Refusal {
    std::chrono::milliseconds retry_after;
    bool tokens;  // the token limit (else the request limit)
  };
  std::optional<Refusal> Admit(const std::string& key, Clock::time_point now = Clock::now());

  // Charges `tokens` used by a request of `key` that ended.
  void Charge(const std::string& key, int64_t tokens, Clock::time_point now = Clock::now());

  const RateLimits& limits() const { return limits_; }

 private:
  struct Bucket {
    double requests = 0;  // available; starts full
    double tokens = 0;    // balance; starts full, may go negative
    Clock::time_point refilled;
  };
  Bucket& Refill(const std::string& key, Clock::time_point now);

  const RateLimits limits_;
  std::mutex mu_;
  std::map<std::string, Bucket> buckets_;
};

}  // namespace strata::gateway

#include "coordinator/gateway/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace strata::gateway {

RateLimiter::Bucket& RateLimiter::Refill(const std::string& key, Clock::time_point now) {
  auto [it, fresh] = buckets_.try_emplace(key);
  Bucket& b = it->second;
  if (fresh) {
    b.requests = static_cast<double>(limits_.requests_per_minute);
    b.tokens = static_cast<double>(limits_.tokens_per_minute);
    b.refilled = now;
    return b;
  }
  const double minutes = std::chrono::duration<double>(now - b.refilled).count() / 60.0;
  if (minutes > 0) {
    b.requests = std::min<double>(static_cast<double>(limits_.requests_per_minute),
                                  b.requests + minutes * limits_.requests_per_minute);
    b.tokens = std::min<double>(static_cast<double>(limits_.tokens_per_minute),
                                b.tokens + minutes * limits_.tokens_per_minute);
    b.refilled = now;
  }
  return b;
}

std::optional<RateLimiter::Refusal> RateLimiter::Admit(const std::string& key,
                                                       Clock::time_point now) {
  if (!enabled()) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  Bucket& b = Refill(key, now);
  auto wait = [](double missing, int64_t per_minute) {
    return std::chrono::milliseconds(
        static_cast<int64_t>(std::ceil(missing / static_cast<double>(per_minute) * 60'000.0)));
  };
  if (limits_.tokens_per_minute > 0 && b.tokens < 0) {
    return Refusal{wait(-b.tokens, limits_.tokens_per_minute), true};
  }
  if (limits_.requests_per_minute > 0) {
    if (b.requests < 1) return Refusal{wait(1 - b.requests, limits_.requests_per_minute), false};
    b.requests -= 1;
  }
  return std::nullopt;
}

void RateLimiter::Charge(const std::string& key, int64_t tokens, Clock::time_point now) {
  if (limits_.tokens_per_minute <= 0 || tokens <= 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  Refill(key, now).tokens -= static_cast<double>(tokens);
}

}  // namespace strata::gateway

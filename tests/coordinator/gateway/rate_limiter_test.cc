// Per-key token buckets, with time passed in: bursts up to the minute's limit, then the rate;
// tokens charged after the fact put a key in debt until the balance recovers; keys apart.
#include "coordinator/gateway/rate_limiter.h"

#include "gtest/gtest.h"

namespace strata::gateway {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(RateLimiterTest, RequestsPerMinuteBurstThenRefill) {
  RateLimiter limiter({/*requests_per_minute=*/3, /*tokens_per_minute=*/0});
  const auto t0 = RateLimiter::Clock::now();
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(limiter.Admit("a", t0)) << i;
  const auto refused = limiter.Admit("a", t0);
  ASSERT_TRUE(refused);
  EXPECT_FALSE(refused->tokens);
  EXPECT_EQ(refused->retry_after, milliseconds(20'000));  // one request every 20 s
  EXPECT_FALSE(limiter.Admit("b", t0)) << "keys have their own buckets";
  EXPECT_TRUE(limiter.Admit("a", t0 + seconds(19)));
  EXPECT_FALSE(limiter.Admit("a", t0 + seconds(20)));
  EXPECT_TRUE(limiter.Admit("a", t0 + seconds(21)));
  // A long pause refills to the limit, not beyond.
  const auto later = t0 + std::chrono::minutes(10);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(limiter.Admit("a", later)) << i;
  EXPECT_TRUE(limiter.Admit("a", later));
}

TEST(RateLimiterTest, TokensAreChargedAsUsedAndDebtIsWaitedOut) {
  RateLimiter limiter({/*requests_per_minute=*/0, /*tokens_per_minute=*/600});
  const auto t0 = RateLimiter::Clock::now();
  EXPECT_FALSE(limiter.Admit("a", t0));
  limiter.Charge("a", 500, t0);
  EXPECT_FALSE(limiter.Admit("a", t0)) << "100 tokens left: not in debt";
  limiter.Charge("a", 400, t0);  // 300 in debt: 30 s at 10 tokens/s
  const auto refused = limiter.Admit("a", t0);
  ASSERT_TRUE(refused);
  EXPECT_TRUE(refused->tokens);
  EXPECT_EQ(refused->retry_after, milliseconds(30'000));
  EXPECT_TRUE(limiter.Admit("a", t0 + seconds(29)));
  EXPECT_FALSE(limiter.Admit("a", t0 + seconds(30)));
  EXPECT_FALSE(limiter.Admit("b", t0));
}

TEST(RateLimiterTest, NoLimitsAdmitEverything) {
  RateLimiter limiter({});
  EXPECT_FALSE(limiter.enabled());
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(limiter.Admit("a"));
  limiter.Charge("a", 1 << 30);
  EXPECT_FALSE(limiter.Admit("a"));
}

}  // namespace
}  // namespace strata::gateway

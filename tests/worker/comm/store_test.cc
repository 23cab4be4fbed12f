// FileStore: values round-trip byte for byte, Get waits and times out, Add is atomic across
// processes.
#include "worker/comm/store.h"

#include <thread>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"
#include "tests/worker/comm/multiprocess.h"

namespace strata {
namespace {

using std::chrono::milliseconds;

TEST(FileStoreTest, SetThenGetRoundTripsBytes) {
  FileStore store(testing::TempDir("file_store_roundtrip"));
  const std::string bytes("a\0b\xff/\n", 6);
  ASSERT_TRUE(store.Set("group/0", bytes).ok());
  ASSERT_TRUE(store.Set("group%2F0", "other").ok());  // must not collide with "group/0"
  absl::StatusOr<std::string> got = store.Get("group/0", milliseconds(0));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, bytes);
  EXPECT_EQ(*store.Get("group%2F0", milliseconds(0)), "other");
  ASSERT_TRUE(store.Set("group/0", "").ok());  // replaced, empty is a value
  EXPECT_EQ(*store.Get("group/0", milliseconds(0)), "");
}

TEST(FileStoreTest, GetTimesOutNamingTheKey) {
  FileStore store(testing::TempDir("file_store_timeout"));
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> got = store.Get("never/set", milliseconds(100));
  const double seconds = testing::SecondsSince(start);
  ASSERT_TRUE(absl::IsDeadlineExceeded(got.status())) << got.status();
  EXPECT_TRUE(absl::StrContains(got.status().message(), "never/set")) << got.status();
  EXPECT_GE(seconds, 0.1);
  EXPECT_LT(seconds, 1.0);
}

TEST(FileStoreTest, GetWaitsForAnotherProcess) {
  const std::filesystem::path dir = testing::TempDir("file_store_wait");
  const std::vector<testing::RankExit> exits = testing::RunRanks(2, [&](int rank) {
    FileStore store(dir);
    if (rank == 1) {
      std::this_thread::sleep_for(milliseconds(100));
      STRATA_CHILD_CHECK_OK(store.Set("late", "here"));
      return 0;
    }
    absl::StatusOr<std::string> got = store.Get("late", milliseconds(5000));
    STRATA_CHILD_CHECK_OK(got.status());
    STRATA_CHILD_CHECK(*got == "here");
    return 0;
  });
  for (const auto& e : exits) EXPECT_TRUE(e.ok()) << e.Describe();
}

TEST(FileStoreTest, AddIsAtomicAcrossProcesses) {
  const std::filesystem::path dir = testing::TempDir("file_store_add");
  constexpr int kProcs = 4, kAdds = 50;
  const std::vector<testing::RankExit> exits = testing::RunRanks(kProcs, [&](int rank) {
    FileStore store(dir);
    for (int i = 0; i < kAdds; ++i) STRATA_CHILD_CHECK_OK(store.Add("counter", 1).status());
    return 0;
  });
  for (const auto& e : exits) EXPECT_TRUE(e.ok()) << e.Describe();
  FileStore store(dir);
  absl::StatusOr<int64_t> total = store.Add("counter", 0);
  ASSERT_TRUE(total.ok()) << total.status();
  EXPECT_EQ(*total, kProcs * kAdds);
  EXPECT_EQ(*store.Get("counter", milliseconds(0)), std::to_string(kProcs * kAdds));
  ASSERT_TRUE(store.Set("text", "abc").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store.Add("text", 1).status()));
}

}  // namespace
}  // namespace strata

#include "common/process_stats.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(ProcessStatsTest, ReadsThisProcessAsProcReportsIt) {
  const ProcessStats stats = ReadProcessStats();
  EXPECT_GT(stats.resident_bytes, 1 << 20);
  EXPECT_GE(stats.virtual_bytes, stats.resident_bytes);
  EXPECT_GE(stats.open_fds, 3);  // stdin, stdout, stderr
  EXPECT_GE(stats.max_fds, stats.open_fds);
  EXPECT_GE(stats.cpu_seconds, 0);
  // Started within the last hour, not in the future (a few seconds of slack for rounding).
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(stats.start_time_seconds, now + 2);
  EXPECT_GT(stats.start_time_seconds, now - 3600);
}

TEST(ProcessStatsTest, CountsADescriptorOpenedAndClosed) {
  const int64_t before = ReadProcessStats().open_fds;
  const int fd = ::open("/proc/self/stat", O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(ReadProcessStats().open_fds, before + 1);
  ::close(fd);
  EXPECT_EQ(ReadProcessStats().open_fds, before);
}

TEST(ProcessStatsTest, HeapAllocatedFollowsMallocAndFree) {
  const ProcessStats before = ReadProcessStats();
  if (before.heap_allocated_bytes < 0) GTEST_SKIP() << "malloc statistics need glibc 2.33+";
  constexpr size_t kBytes = 48 << 20;
  char* block = static_cast<char*>(std::malloc(kBytes));
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, kBytes);  // resident too
  const ProcessStats held = ReadProcessStats();
  EXPECT_GE(held.heap_allocated_bytes - before.heap_allocated_bytes, static_cast<int64_t>(kBytes));
  EXPECT_GE(held.resident_bytes - before.resident_bytes, static_cast<int64_t>(kBytes) / 2);
  std::free(block);
  const ProcessStats after = ReadProcessStats();
  EXPECT_LT(after.heap_allocated_bytes,
            held.heap_allocated_bytes - static_cast<int64_t>(kBytes) / 2);
  EXPECT_GE(after.heap_free_bytes, 0);
}

TEST(ProcessStatsTest, CpuTimeAdvancesWithWork) {
  const double before = ReadProcessStats().cpu_seconds;
  // Spin for 200 ms of this process's CPU time (std::clock, however busy the machine is).
  const std::clock_t start = std::clock();
  volatile double sink = 0;
  while (std::clock() - start < CLOCKS_PER_SEC / 5) sink = sink + 1;
  EXPECT_GT(ReadProcessStats().cpu_seconds, before + 0.15);
}

}  // namespace
}  // namespace strata

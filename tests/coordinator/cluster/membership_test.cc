// Membership without gRPC: ids, waiting for N alive, leases and revival, restart re-ids.
#include "coordinator/cluster/membership.h"

#include <thread>

#include "gtest/gtest.h"

namespace strata {
namespace {

using std::chrono::milliseconds;

MembershipOptions Short() {
  MembershipOptions options;
  options.heartbeat_interval = milliseconds(100);
  options.lease = milliseconds(300);
  options.check_interval = milliseconds(50);
  return options;
}

DeviceInventory Cpu() { return {DeviceKind::kCpu, 1, {int64_t{1} << 30}, "n"}; }

TEST(MembershipTest, WaitForAliveReturnsWhenEnoughRegisterAndTimesOutOtherwise) {
  Membership membership(Short());
  const absl::Status early = membership.WaitForAlive(1, milliseconds(20));
  EXPECT_TRUE(absl::IsDeadlineExceeded(early)) << early;
  EXPECT_NE(early.message().find("0 are"), std::string_view::npos) << early;

  std::thread later([&] {
    std::this_thread::sleep_for(milliseconds(50));
    membership.Register(0, "a:1", Cpu());
    membership.Register(0, "b:1", Cpu());
  });
  EXPECT_TRUE(membership.WaitForAlive(2, milliseconds(2000)).ok());
  later.join();
}

TEST(MembershipTest, RequestedIdIsKeptAfterACoordinatorRestart) {
  Membership membership(Short());
  EXPECT_EQ(membership.Register(7, "a:1", Cpu()), 7u);  // fresh registry honours the id
  EXPECT_EQ(membership.Register(7, "b:1", Cpu()), 8u);  // taken by another host: a new one
  EXPECT_EQ(membership.Register(0, "c:1", Cpu()), 9u);
  EXPECT_EQ(membership.Register(0, "a:1", Cpu()), 7u);  // known host keeps its id
  EXPECT_EQ(membership.Snapshot().size(), 3u);
}

TEST(MembershipTest, HeartbeatsKeepAWorkerAliveAcrossSeveralLeases) {
  Membership membership(Short());
  const uint64_t id = membership.Register(0, "a:1", Cpu());
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    ASSERT_TRUE(membership.Heartbeat(id, "busy"));
  }
  EXPECT_EQ(membership.AliveCount(), 1);
}

}  // namespace
}  // namespace strata

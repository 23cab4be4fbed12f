// Membership without gRPC: ids, waiting for N alive, leases and revival, restart re-ids.
#include "coordinator/cluster/membership.h"

#include <set>

#include <thread>

#include "coordinator/cluster/rendezvous_store.h"
#include "gtest/gtest.h"
#include "proto/cluster_protocol.h"

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

DeviceInventory Cpu() {
  DeviceInventory cpu;
  cpu.device_count = 1;
  cpu.memory_bytes = {int64_t{1} << 30};
  cpu.node_name = "n";
  return cpu;
}

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

// Workers restarted on new ports leave dead entries behind: only the most recently seen
// `max_dead_listed` stay, so a long-lived coordinator's registry does not grow with restarts.
TEST(MembershipTest, OnlyTheMostRecentDeadWorkersStayListed) {
  MembershipOptions options = Short();
  options.max_dead_listed = 3;
  Membership membership(options);
  std::vector<uint64_t> ids;
  for (int i = 0; i < 6; ++i) {
    std::string host = "w:";
    host += std::to_string(1000 + i);
    ids.push_back(membership.Register(0, host, Cpu()));
    std::this_thread::sleep_for(milliseconds(2));  // distinct last-seen times
  }
  const uint64_t alive = membership.Register(0, "alive:1", Cpu());
  for (uint64_t id : ids) membership.MarkDead(id, "test");
  std::set<uint64_t> listed;
  for (const WorkerInfo& w : membership.Snapshot()) listed.insert(w.id);
  EXPECT_EQ(listed, (std::set<uint64_t>{ids[3], ids[4], ids[5], alive}));
  EXPECT_TRUE(membership.SessionToken(ids[0]).empty());  // its secret is gone with it
  EXPECT_FALSE(membership.SessionToken(alive).empty());
}

// A reload's keys live under its generation's prefix; two generations on, they are forgotten.
TEST(RendezvousStoreTest, ForgetsKeysTwoGenerationsOld) {
  RendezvousStore store;
  store.Set(StoreGenerationPrefix(1) + "tp/stage0/0", "a");
  store.Set("other", "kept");  // not a generation key
  ASSERT_TRUE(store.Add(StoreGenerationPrefix(2) + "tp/stage0/count", 1).ok());
  EXPECT_EQ(store.size(), 3u);  // generation 1 is still the one before
  store.Set(StoreGenerationPrefix(3) + "tp/stage0/0", "c");
  EXPECT_EQ(store.size(), 3u);
  EXPECT_TRUE(absl::IsDeadlineExceeded(
      store.Get(StoreGenerationPrefix(1) + "tp/stage0/0", milliseconds(1)).status()));
  EXPECT_EQ(*store.Get(StoreGenerationPrefix(2) + "tp/stage0/count", milliseconds(1)), "1");
  EXPECT_EQ(*store.Get("other", milliseconds(1)), "kept");
  store.Set("g12x/not-a-generation", "y");  // malformed prefixes are ordinary keys
  EXPECT_EQ(store.size(), 4u);
}

}  // namespace
}  // namespace strata

// WorkerAgent and GrpcStore against a real CoordinatorServer on 127.0.0.1 (ephemeral port):
// heartbeats keep a worker alive, a silent one dies within lease + check interval, a
// restarted coordinator is re-joined, and the store round-trips, blocks and times out.
#include "worker/service/worker_agent.h"

#include <chrono>
#include <thread>

#include "coordinator/cluster/coordinator_server.h"
#include "gtest/gtest.h"
#include "worker/comm/grpc_store.h"

namespace strata {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kLease(300);
constexpr milliseconds kCheck(50);

std::unique_ptr<CoordinatorServer> StartServer(int port = 0) {
  CoordinatorServerOptions options;
  options.host = "127.0.0.1";
  options.port = port;
  options.membership.heartbeat_interval = milliseconds(50);
  options.membership.lease = kLease;
  options.membership.check_interval = kCheck;
  auto server = CoordinatorServer::Start(options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

WorkerAgentOptions AgentOptions(const CoordinatorServer& server) {
  WorkerAgentOptions options;
  options.coordinator = server.address();
  options.host = "127.0.0.1:9001";
  options.inventory.device_count = 1;
  options.inventory.memory_bytes = {int64_t{4} << 30};
  options.inventory.node_name = "local";
  options.rpc_timeout = milliseconds(2000);
  return options;
}

// A GrpcStore presenting a registration made through a real WorkerAgent (the coordinator's
// store admits registered workers only).
struct RegisteredStore {
  std::unique_ptr<GrpcStore> store;
  std::unique_ptr<WorkerAgent> agent;
};

RegisteredStore Registered(const CoordinatorServer& server, const std::string& host) {
  RegisteredStore r;
  r.store = std::make_unique<GrpcStore>(server.address());
  WorkerAgentOptions options = AgentOptions(server);
  options.host = host;
  options.on_registered = [store = r.store.get()](uint64_t id, const std::string& token) {
    store->SetSession(id, token);
  };
  auto agent = WorkerAgent::Start(options);
  EXPECT_TRUE(agent.ok()) << agent.status();
  if (agent.ok()) r.agent = *std::move(agent);
  return r;
}

// Polls `pred` every 5 ms; returns the time it took, or `limit` when it never held.
template <typename Pred>
milliseconds TimeUntil(Pred pred, milliseconds limit) {
  const auto start = Clock::now();
  while (!pred() && Clock::now() - start < limit) std::this_thread::sleep_for(milliseconds(5));
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start);
}

TEST(WorkerAgentTest, HeartbeatsKeepItAliveAndASilentWorkerDiesWithinTheLease) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto agent = WorkerAgent::Start(AgentOptions(*server));
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_NE((*agent)->worker_id(), 0u);
  std::this_thread::sleep_for(kLease * 2);  // two leases, kept alive by heartbeats
  EXPECT_EQ(server->membership().AliveCount(), 1);
  EXPECT_TRUE((*agent)->last_error().ok()) << (*agent)->last_error();

  (*agent)->Stop();
  const milliseconds took =
      TimeUntil([&] { return server->membership().AliveCount() == 0; }, milliseconds(3000));
  EXPECT_LE(took, kLease + kCheck + milliseconds(50));  // 50 ms of scheduling slack
}

TEST(WorkerAgentTest, VersionMismatchFailsStartNamingBothVersions) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  WorkerAgentOptions options = AgentOptions(*server);
  options.protocol_version = kClusterProtocolVersion + 1;
  auto agent = WorkerAgent::Start(options);
  ASSERT_FALSE(agent.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(agent.status())) << agent.status();
  EXPECT_EQ(server->membership().AliveCount(), 0);
}

TEST(WorkerAgentTest, ReRegistersWithARestartedCoordinatorKeepingItsId) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  auto agent = WorkerAgent::Start(AgentOptions(*server));
  ASSERT_TRUE(agent.ok()) << agent.status();
  const uint64_t id = (*agent)->worker_id();

  server->Stop();
  server.reset();
  server = StartServer(port);  // same address, empty registry
  ASSERT_NE(server, nullptr);
  const milliseconds took =
      TimeUntil([&] {
        return server->membership().AliveCount() == 1 && (*agent)->registrations() >= 2;
      }, milliseconds(5000));
  EXPECT_LT(took, milliseconds(5000));
  ASSERT_EQ(server->membership().Snapshot().size(), 1u);
  EXPECT_EQ(server->membership().Snapshot()[0].id, id);
  (*agent)->Stop();
}

TEST(GrpcStoreTest, SetGetAddRoundTrip) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  RegisteredStore registered = Registered(*server, "127.0.0.1:9001");
  GrpcStore& store = *registered.store;
  ASSERT_TRUE(store.Set("nccl/id", std::string("\0\1binary", 8)).ok());
  auto value = store.Get("nccl/id", milliseconds(100));
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, std::string("\0\1binary", 8));
  EXPECT_EQ(*store.Add("count", 2), 2);
  EXPECT_EQ(*store.Add("count", 3), 5);
  EXPECT_EQ(*store.Get("count", milliseconds(100)), "5");
  EXPECT_TRUE(absl::IsFailedPrecondition(store.Add("nccl/id", 1).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(store.Set("big", std::string(kMaxStoreValueBytes + 1, 'x'))));
}

TEST(GrpcStoreTest, GetBlocksUntilAnotherThreadSets) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  RegisteredStore registered = Registered(*server, "127.0.0.1:9001");
  RegisteredStore other = Registered(*server, "127.0.0.1:9002");
  GrpcStore& store = *registered.store;
  std::thread setter([&] {
    std::this_thread::sleep_for(milliseconds(200));
    EXPECT_TRUE(other.store->Set("gloo/rank1", "addr").ok());
  });
  const auto start = Clock::now();
  auto value = store.Get("gloo/rank1", milliseconds(5000));
  setter.join();
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "addr");
  EXPECT_GE(Clock::now() - start, milliseconds(150));
}

// Only registered, live workers may use the rendezvous store (where Gloo and NCCL groups
// exchange addresses) or deregister a worker: anyone else who reaches the port is refused.
TEST(GrpcStoreTest, OnlyRegisteredWorkersMayUseTheStore) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  GrpcStore stranger(server->address());
  EXPECT_TRUE(absl::IsPermissionDenied(stranger.Set("gloo/rank0", "evil")));
  EXPECT_TRUE(absl::IsPermissionDenied(stranger.Add("count", 1).status()));
  EXPECT_TRUE(absl::IsPermissionDenied(stranger.Get("gloo/rank0", milliseconds(100)).status()));

  RegisteredStore worker = Registered(*server, "127.0.0.1:9001");
  ASSERT_NE(worker.agent, nullptr);
  const uint64_t id = worker.agent->worker_id();
  stranger.SetSession(id, std::string(16, 'x'));  // its id, a guessed token
  EXPECT_TRUE(absl::IsPermissionDenied(stranger.Set("gloo/rank0", "evil")));
  EXPECT_TRUE(worker.store->Set("gloo/rank0", "good").ok());
  EXPECT_EQ(*worker.store->Get("gloo/rank0", milliseconds(100)), "good");

  // A worker that left (deregistered) is no longer admitted.
  ASSERT_TRUE(worker.agent->Deregister("test", milliseconds(2000)).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(worker.store->Set("gloo/rank0", "late")));
}

TEST(GrpcStoreTest, GetTimesOutNamingTheKey) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  RegisteredStore registered = Registered(*server, "127.0.0.1:9001");
  GrpcStore& store = *registered.store;
  const auto start = Clock::now();
  auto value = store.Get("missing/key", milliseconds(300));
  const auto took = Clock::now() - start;
  ASSERT_TRUE(absl::IsDeadlineExceeded(value.status())) << value.status();
  EXPECT_NE(value.status().message().find("missing/key"), std::string_view::npos);
  EXPECT_GE(took, milliseconds(300));
  EXPECT_LT(took, milliseconds(1500));
}

}  // namespace
}  // namespace strata

// ClusterService over real gRPC on 127.0.0.1 (ephemeral port): registration, heartbeats,
// health, validation at the edge (the server keeps serving after bad input), and the store.
#include "coordinator/cluster/cluster_service.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "coordinator/cluster/coordinator_server.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "proto/cluster_protocol.h"

namespace strata {
namespace {

using std::chrono::milliseconds;

v1::RegisterRequest GoodRequest(const std::string& host) {
  v1::RegisterRequest request;
  request.set_protocol_version(kClusterProtocolVersion);
  request.set_host(host);
  request.mutable_inventory()->set_device_kind(v1::DEVICE_KIND_CUDA);
  request.mutable_inventory()->set_kv_dtype("bf16");
  request.mutable_inventory()->set_device_count(2);
  request.mutable_inventory()->add_memory_bytes(int64_t{80} << 30);
  request.mutable_inventory()->add_memory_bytes(int64_t{80} << 30);
  request.mutable_inventory()->set_node_name("node-a");
  return request;
}

class ClusterServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CoordinatorServerOptions options;
    options.host = "127.0.0.1";
    options.membership.heartbeat_interval = milliseconds(100);
    options.membership.lease = milliseconds(300);
    options.membership.check_interval = milliseconds(50);
    auto server = CoordinatorServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
    stub_ = v1::ClusterService::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  grpc::Status Register(const v1::RegisterRequest& request, v1::RegisterReply* reply) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    return stub_->Register(&context, request, reply);
  }
  // Registers a fresh worker (alive from now for the 300 ms lease) and has `request` present
  // its session: the store admits registered workers only.
  template <typename Request>
  void Admitted(Request& request) {
    v1::RegisterReply reply;
    ASSERT_TRUE(Register(GoodRequest("10.0.9." + std::to_string(++registered_) + ":7000"), &reply)
                    .ok());
    request.set_worker_id(reply.worker_id());
    request.set_session_token(reply.session_token());
  }
  int registered_ = 0;

  grpc::Status Heartbeat(uint64_t id, v1::HeartbeatReply* reply) {
    v1::HeartbeatRequest request;
    request.set_worker_id(id);
    request.set_status("idle");
    grpc::ClientContext context;
    return stub_->Heartbeat(&context, request, reply);
  }
  uint32_t AliveByHealth() {
    v1::HealthReply reply;
    grpc::ClientContext context;
    EXPECT_TRUE(stub_->Health(&context, v1::HealthRequest(), &reply).ok());
    EXPECT_TRUE(reply.serving());
    EXPECT_EQ(reply.protocol_version(), kClusterProtocolVersion);
    return reply.workers_alive();
  }

  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<v1::ClusterService::Stub> stub_;
};

TEST_F(ClusterServiceTest, RegisterHeartbeatHealth) {
  EXPECT_EQ(AliveByHealth(), 0u);
  v1::RegisterReply a, b;
  ASSERT_TRUE(Register(GoodRequest("10.0.0.1:7000"), &a).ok());
  ASSERT_TRUE(Register(GoodRequest("10.0.0.2:7000"), &b).ok());
  EXPECT_TRUE(a.accepted());
  EXPECT_NE(a.worker_id(), 0u);
  EXPECT_NE(a.worker_id(), b.worker_id());
  EXPECT_EQ(a.heartbeat_interval_ms(), 100u);
  EXPECT_EQ(a.lease_ms(), 300u);
  EXPECT_EQ(AliveByHealth(), 2u);
  EXPECT_TRUE(server_->membership().WaitForAlive(2, milliseconds(10)).ok());

  v1::HeartbeatReply beat;
  ASSERT_TRUE(Heartbeat(a.worker_id(), &beat).ok());
  EXPECT_TRUE(beat.known());
  ASSERT_TRUE(Heartbeat(999, &beat).ok());
  EXPECT_FALSE(beat.known());

  const std::vector<WorkerInfo> workers = server_->membership().Snapshot();
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[0].host, "10.0.0.1:7000");
  EXPECT_EQ(workers[0].status, "idle");
  EXPECT_EQ(workers[0].inventory.device_count, 2);
  EXPECT_EQ(workers[0].inventory.memory_bytes.size(), 2u);
  EXPECT_EQ(workers[0].inventory.node_name, "node-a");
}

TEST_F(ClusterServiceTest, VersionMismatchIsRefusedNamingBothVersions) {
  v1::RegisterRequest request = GoodRequest("10.0.0.1:7000");
  request.set_protocol_version(kClusterProtocolVersion + 41);
  v1::RegisterReply reply;
  const grpc::Status status = Register(request, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("v" + std::to_string(kClusterProtocolVersion + 41)),
            std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("v" + std::to_string(kClusterProtocolVersion)),
            std::string::npos);
  EXPECT_EQ(AliveByHealth(), 0u);
}

TEST_F(ClusterServiceTest, MalformedRegistrationsNameTheFieldAndServerKeepsServing) {
  struct Case {
    const char* name;
    void (*mutate)(v1::RegisterRequest&);
    const char* field;
  };
  const Case cases[] = {
      {"empty host", [](v1::RegisterRequest& r) { r.clear_host(); }, "host"},
      {"no inventory", [](v1::RegisterRequest& r) { r.clear_inventory(); }, "inventory"},
      {"no kind",
       [](v1::RegisterRequest& r) {
         r.mutable_inventory()->set_device_kind(v1::DEVICE_KIND_UNSPECIFIED);
       },
       "inventory.device_kind"},
      {"bad kv dtype", [](v1::RegisterRequest& r) { r.mutable_inventory()->set_kv_dtype("f33"); },
       "inventory.kv_dtype"},
      {"zero devices", [](v1::RegisterRequest& r) { r.mutable_inventory()->set_device_count(0); },
       "inventory.device_count"},
      {"memory count",
       [](v1::RegisterRequest& r) { r.mutable_inventory()->mutable_memory_bytes()->RemoveLast(); },
       "inventory.memory_bytes"},
      {"negative memory",
       [](v1::RegisterRequest& r) { r.mutable_inventory()->set_memory_bytes(1, -5); },
       "inventory.memory_bytes[1]"},
  };
  for (const Case& c : cases) {
    v1::RegisterRequest request = GoodRequest("10.0.0.1:7000");
    c.mutate(request);
    v1::RegisterReply reply;
    const grpc::Status status = Register(request, &reply);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    EXPECT_EQ(status.error_message().rfind(c.field, 0), 0u)
        << c.name << ": " << status.error_message();
  }
  v1::HeartbeatReply beat;
  EXPECT_EQ(Heartbeat(0, &beat).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(AliveByHealth(), 0u);  // still serving, nothing registered
  v1::RegisterReply reply;
  EXPECT_TRUE(Register(GoodRequest("10.0.0.1:7000"), &reply).ok());
}

TEST_F(ClusterServiceTest, StoreRejectsBadKeysValuesAndTimeouts) {
  {
    v1::StoreSetRequest request;
    request.set_key("k");
    request.set_value(std::string(kMaxStoreValueBytes + 1, 'x'));
    Admitted(request);
    v1::StoreSetReply reply;
    grpc::ClientContext context;
    const grpc::Status status = stub_->StoreSet(&context, request, &reply);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("value of store key 'k'"), std::string::npos);
  }
  {
    v1::StoreAddRequest request;
    request.set_key(std::string(kMaxStoreKeyBytes + 1, 'k'));
    Admitted(request);
    v1::StoreAddReply reply;
    grpc::ClientContext context;
    EXPECT_EQ(stub_->StoreAdd(&context, request, &reply).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    v1::StoreGetRequest request;
    request.set_key("k");
    request.set_timeout_ms(static_cast<uint32_t>(kMaxStoreWait.count()) + 1);
    Admitted(request);
    v1::StoreGetReply reply;
    grpc::ClientContext context;
    const grpc::Status status = stub_->StoreGet(&context, request, &reply);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("timeout_ms"), std::string::npos);
  }
  {
    v1::StoreGetRequest request;  // empty key
    Admitted(request);
    v1::StoreGetReply reply;
    grpc::ClientContext context;
    EXPECT_EQ(stub_->StoreGet(&context, request, &reply).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  EXPECT_EQ(server_->store().size(), 0u);
}

TEST_F(ClusterServiceTest, DeregisterNeedsTheWorkersSessionToken) {
  v1::RegisterReply reply;
  ASSERT_TRUE(Register(GoodRequest("10.0.0.1:7000"), &reply).ok());
  EXPECT_EQ(reply.session_token().size(), 16u);
  auto deregister = [&](const std::string& token) {
    v1::DeregisterRequest request;
    request.set_worker_id(reply.worker_id());
    request.set_reason("test");
    request.set_session_token(token);
    v1::DeregisterReply out;
    grpc::ClientContext context;
    return stub_->Deregister(&context, request, &out);
  };
  EXPECT_EQ(deregister("").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(deregister(std::string(16, '\0')).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(AliveByHealth(), 1u);  // nobody else can make a worker leave
  EXPECT_TRUE(deregister(reply.session_token()).ok());
  EXPECT_EQ(AliveByHealth(), 0u);
}

TEST_F(ClusterServiceTest, ReRegistrationOfAKnownHostKeepsItsIdAndRevivesIt) {
  v1::RegisterReply first;
  ASSERT_TRUE(Register(GoodRequest("10.0.0.1:7000"), &first).ok());
  // Silent past the lease: dead, and its heartbeats are no longer accepted.
  const auto start = std::chrono::steady_clock::now();
  while (server_->membership().AliveCount() != 0 &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(2)) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_LE(std::chrono::steady_clock::now() - start, milliseconds(300 + 50 + 100));
  v1::HeartbeatReply beat;
  ASSERT_TRUE(Heartbeat(first.worker_id(), &beat).ok());
  EXPECT_FALSE(beat.known());

  v1::RegisterReply again;
  ASSERT_TRUE(Register(GoodRequest("10.0.0.1:7000"), &again).ok());
  EXPECT_EQ(again.worker_id(), first.worker_id());
  EXPECT_EQ(server_->membership().AliveCount(), 1);
  ASSERT_EQ(server_->membership().Snapshot().size(), 1u);
}

TEST_F(ClusterServiceTest, StopReleasesBlockedStoreGets) {
  v1::StoreGetRequest request;
  request.set_key("never");
  request.set_timeout_ms(60000);
  Admitted(request);
  std::thread waiter([&] {
    v1::StoreGetReply reply;
    grpc::ClientContext context;
    EXPECT_FALSE(stub_->StoreGet(&context, request, &reply).ok());
  });
  std::this_thread::sleep_for(milliseconds(100));
  const auto start = std::chrono::steady_clock::now();
  server_->Stop();
  waiter.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

}  // namespace
}  // namespace strata

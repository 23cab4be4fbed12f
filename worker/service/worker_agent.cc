#include "worker/service/worker_agent.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"
#include "proto/grpc_status.h"
#include "strata/v1/cluster.grpc.pb.h"

namespace strata {

struct WorkerAgent::Rpc {
  std::unique_ptr<v1::ClusterService::Stub> stub;
};

WorkerAgent::WorkerAgent(WorkerAgentOptions options,
                         std::shared_ptr<grpc::ChannelCredentials> credentials)
    : options_(std::move(options)), rpc_(std::make_unique<Rpc>()) {
  // Reconnect quickly when the coordinator comes back (gRPC's default backoff grows to 2 min).
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  ApplyTls(options_.tls, args);
  rpc_->stub = v1::ClusterService::NewStub(
      grpc::CreateCustomChannel(options_.coordinator, std::move(credentials), args));
}

absl::StatusOr<std::unique_ptr<WorkerAgent>> WorkerAgent::Start(WorkerAgentOptions options) {
  auto credentials = ChannelCredentialsFor(options.tls);
  if (!credentials.ok()) return credentials.status();
  std::unique_ptr<WorkerAgent> agent(new WorkerAgent(std::move(options), *std::move(credentials)));
  const absl::Status registered = agent->Register();
  if (!registered.ok()) return registered;
  agent->thread_ = std::thread([a = agent.get()] { a->HeartbeatLoop(); });
  return agent;
}

WorkerAgent::~WorkerAgent() { Stop(); }

void WorkerAgent::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

absl::Status WorkerAgent::Deregister(const std::string& reason,
                                     std::chrono::milliseconds timeout) {
  Stop();
  v1::DeregisterRequest request;
  {
    std::lock_guard<std::mutex> lock(mu_);
    request.set_worker_id(worker_id_);
    request.set_session_token(session_token_);
  }
  request.set_reason(reason);
  v1::DeregisterReply reply;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  return FromGrpcStatus(rpc_->stub->Deregister(&context, request, &reply),
                        absl::StrCat("deregister from coordinator ", options_.coordinator));
}

uint64_t WorkerAgent::worker_id() const {
  std::lock_guard<std::mutex> lock(mu_);
  return worker_id_;
}

int WorkerAgent::registrations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return registrations_;
}

absl::Status WorkerAgent::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

absl::Status WorkerAgent::Register() {
  v1::RegisterRequest request;
  request.set_protocol_version(options_.protocol_version);
  request.set_worker_id(worker_id());
  request.set_host(options_.host);
  v1::Inventory* inventory = request.mutable_inventory();
  inventory->set_device_kind(options_.inventory.device_kind == DeviceKind::kCuda
                                 ? v1::DEVICE_KIND_CUDA
                                 : v1::DEVICE_KIND_CPU);
  inventory->set_device_count(options_.inventory.device_count);
  for (int64_t bytes : options_.inventory.memory_bytes) inventory->add_memory_bytes(bytes);
  inventory->set_node_name(options_.inventory.node_name);
  inventory->set_kv_dtype(DTypeName(options_.inventory.kv_dtype));
  inventory->set_device_name(options_.inventory.device_name);

  v1::RegisterReply reply;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + options_.rpc_timeout);
  context.set_wait_for_ready(true);
  absl::Status status =
      FromGrpcStatus(rpc_->stub->Register(&context, request, &reply),
                     absl::StrCat("register with coordinator ", options_.coordinator));
  if (status.ok() && !reply.accepted()) {
    status = absl::FailedPreconditionError(
        absl::StrCat("coordinator ", options_.coordinator, " refused us: ", reply.reason()));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_error_ = status;
    if (!status.ok()) return status;
    worker_id_ = reply.worker_id();
    session_token_ = reply.session_token();
    ++registrations_;
    if (reply.heartbeat_interval_ms() > 0) {
      interval_ = std::chrono::milliseconds(reply.heartbeat_interval_ms());
    }
  }
  if (options_.on_registered) options_.on_registered(reply.worker_id(), reply.session_token());
  return absl::OkStatus();
}

void WorkerAgent::HeartbeatLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    wake_.wait_for(lock, interval_, [&] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    Beat();
    lock.lock();
  }
}

void WorkerAgent::Beat() {
  v1::HeartbeatRequest request;
  request.set_worker_id(worker_id());
  request.set_status("idle");
  v1::HeartbeatReply reply;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + options_.rpc_timeout);
  const absl::Status status =
      FromGrpcStatus(rpc_->stub->Heartbeat(&context, request, &reply),
                     absl::StrCat("heartbeat to coordinator ", options_.coordinator));
  if (!status.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    last_error_ = status;
    return;
  }
  if (!reply.known()) {
    STRATA_LOG_WARN("coordinator {} does not know worker {}: registering again",
                    options_.coordinator, worker_id());
    if (const absl::Status again = Register(); !again.ok()) {
      STRATA_LOG_WARN("re-registration failed: {}", again.ToString());
    }
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  last_error_ = absl::OkStatus();
}

}  // namespace strata

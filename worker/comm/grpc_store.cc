#include "worker/comm/grpc_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "proto/cluster_protocol.h"
#include "proto/grpc_status.h"
#include "strata/v1/cluster.grpc.pb.h"

namespace strata {
namespace {

// Extra client-side deadline on a Get beyond the server's wait, so the server's
// DeadlineExceeded (which names the key) normally arrives first.
constexpr std::chrono::milliseconds kGetSlack(2000);

void SetDeadline(grpc::ClientContext& context, std::chrono::milliseconds timeout) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  context.set_wait_for_ready(true);
}

}  // namespace

struct GrpcStore::Stub {
  std::unique_ptr<v1::ClusterService::Stub> stub;
};

GrpcStore::GrpcStore(const std::string& target, std::chrono::milliseconds rpc_timeout,
                     const TlsFiles& tls)
    : target_(target), rpc_timeout_(rpc_timeout), stub_(std::make_unique<Stub>()) {
  auto credentials = ChannelCredentialsFor(tls);
  // The worker read these files when it started; if they vanished since, every call fails
  // with a connection error naming the coordinator.
  grpc::ChannelArguments args;
  ApplyTls(tls, args);
  stub_->stub = v1::ClusterService::NewStub(grpc::CreateCustomChannel(
      target, credentials.ok() ? *credentials : grpc::InsecureChannelCredentials(), args));
}

GrpcStore::~GrpcStore() = default;

void GrpcStore::SetSession(uint64_t worker_id, std::string token) {
  std::lock_guard<std::mutex> lock(mu_);
  worker_id_ = worker_id;
  token_ = std::move(token);
}

template <typename Request>
void GrpcStore::Present(Request& request) const {
  std::lock_guard<std::mutex> lock(mu_);
  request.set_worker_id(worker_id_);
  request.set_session_token(token_);
}

absl::Status GrpcStore::Set(const std::string& key, const std::string& value) {
  v1::StoreSetRequest request;
  request.set_key(key);
  request.set_value(value);
  Present(request);
  v1::StoreSetReply reply;
  grpc::ClientContext context;
  SetDeadline(context, rpc_timeout_);
  return FromGrpcStatus(stub_->stub->StoreSet(&context, request, &reply),
                        absl::StrCat("GrpcStore(", target_, ") Set '", key, "'"));
}

absl::StatusOr<std::string> GrpcStore::Get(const std::string& key,
                                           std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    const bool last = left <= kMaxStoreWait;
    const auto slice = std::clamp(left, std::chrono::milliseconds(0), kMaxStoreWait);
    absl::StatusOr<std::string> value = GetOnce(key, slice);
    if (value.ok() || !absl::IsDeadlineExceeded(value.status()) || last) return value;
  }
}

absl::StatusOr<std::string> GrpcStore::GetOnce(const std::string& key,
                                               std::chrono::milliseconds timeout) {
  v1::StoreGetRequest request;
  request.set_key(key);
  request.set_timeout_ms(static_cast<uint32_t>(timeout.count()));
  Present(request);
  v1::StoreGetReply reply;
  grpc::ClientContext context;
  SetDeadline(context, timeout + kGetSlack);
  const grpc::Status status = stub_->stub->StoreGet(&context, request, &reply);
  if (!status.ok()) {
    return FromGrpcStatus(status, absl::StrCat("GrpcStore(", target_, ") Get '", key,
                                               "' (waited up to ", timeout.count(), " ms)"));
  }
  return std::move(*reply.mutable_value());
}

absl::StatusOr<int64_t> GrpcStore::Add(const std::string& key, int64_t delta) {
  v1::StoreAddRequest request;
  request.set_key(key);
  request.set_delta(delta);
  Present(request);
  v1::StoreAddReply reply;
  grpc::ClientContext context;
  SetDeadline(context, rpc_timeout_);
  const grpc::Status status = stub_->stub->StoreAdd(&context, request, &reply);
  if (!status.ok()) {
    return FromGrpcStatus(status, absl::StrCat("GrpcStore(", target_, ") Add '", key, "'"));
  }
  return reply.value();
}

}  // namespace strata

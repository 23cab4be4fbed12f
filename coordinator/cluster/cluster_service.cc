// ClusterServiceImpl: validate, apply, convert. Each handler is a thin shell over Membership
// or RendezvousStore; validation lives in small functions that return absl::Status.
#include "coordinator/cluster/cluster_service.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "proto/cluster_protocol.h"
#include "proto/grpc_status.h"

namespace strata {
namespace {

absl::Status ValidateKey(const std::string& key) {
  if (key.empty()) return absl::InvalidArgumentError("store key: must not be empty");
  if (key.size() > kMaxStoreKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("store key: ", key.size(), " bytes, limit ",
                                                   kMaxStoreKeyBytes));
  }
  return absl::OkStatus();
}

absl::Status ValidateInventory(const v1::Inventory& inventory) {
  if (inventory.device_kind() != v1::DEVICE_KIND_CPU &&
      inventory.device_kind() != v1::DEVICE_KIND_CUDA) {
    return absl::InvalidArgumentError(absl::StrCat("inventory.device_kind: ",
                                                   inventory.device_kind(),
                                                   " (expected CPU or CUDA)"));
  }
  if (absl::StatusOr<DType> kv = ParseDType(inventory.kv_dtype()); !kv.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("inventory.kv_dtype: '", inventory.kv_dtype(), "' is not a dtype"));
  }
  if (inventory.device_count() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("inventory.device_count: ", inventory.device_count(), " (must be > 0)"));
  }
  if (inventory.memory_bytes_size() != inventory.device_count()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inventory.memory_bytes: ", inventory.memory_bytes_size(), " entries for ",
        inventory.device_count(), " devices (expected one per device)"));
  }
  for (int i = 0; i < inventory.memory_bytes_size(); ++i) {
    if (inventory.memory_bytes(i) <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "inventory.memory_bytes[", i, "]: ", inventory.memory_bytes(i), " (must be > 0)"));
    }
  }
  return absl::OkStatus();
}

DeviceInventory FromProto(const v1::Inventory& inventory) {
  DeviceInventory out;
  out.device_kind =
      inventory.device_kind() == v1::DEVICE_KIND_CUDA ? DeviceKind::kCuda : DeviceKind::kCpu;
  out.device_count = inventory.device_count();
  out.memory_bytes.assign(inventory.memory_bytes().begin(), inventory.memory_bytes().end());
  out.node_name = inventory.node_name();
  out.kv_dtype = *ParseDType(inventory.kv_dtype());
  out.device_name = inventory.device_name();
  return out;
}

}  // namespace

absl::Status ValidateRegisterRequest(const v1::RegisterRequest& request) {
  if (request.protocol_version() != kClusterProtocolVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "protocol_version: worker speaks cluster protocol v", request.protocol_version(),
        ", this coordinator speaks v", kClusterProtocolVersion,
        "; run the same Strata release on both"));
  }
  if (request.host().empty()) return absl::InvalidArgumentError("host: must not be empty");
  if (!request.has_inventory()) return absl::InvalidArgumentError("inventory: missing");
  return ValidateInventory(request.inventory());
}

ClusterServiceImpl::ClusterServiceImpl(Membership& membership, RendezvousStore& store)
    : membership_(membership), store_(store) {}

namespace {

// The rendezvous store (where Gloo and NCCL groups exchange addresses) and deregistration are
// for registered workers only: a caller proves it with its registration's session token.
grpc::Status AdmitWorker(const Membership& membership, uint64_t worker_id,
                         const std::string& token, const char* what) {
  if (membership.Admits(worker_id, token)) return grpc::Status::OK;
  return ToGrpcStatus(absl::PermissionDeniedError(absl::StrCat(
      what, ": worker ", worker_id,
      " is not a registered, live worker with this session token (register first)")));
}

}  // namespace

grpc::Status ClusterServiceImpl::Register(grpc::ServerContext*,
                                          const v1::RegisterRequest* request,
                                          v1::RegisterReply* reply) {
  const absl::Status valid = ValidateRegisterRequest(*request);
  if (!valid.ok()) return ToGrpcStatus(valid);
  const uint64_t id =
      membership_.Register(request->worker_id(), request->host(), FromProto(request->inventory()));
  reply->set_worker_id(id);
  reply->set_accepted(true);
  reply->set_heartbeat_interval_ms(
      static_cast<uint32_t>(membership_.options().heartbeat_interval.count()));
  reply->set_lease_ms(static_cast<uint32_t>(membership_.options().lease.count()));
  reply->set_session_token(membership_.SessionToken(id));
  return grpc::Status::OK;
}

grpc::Status ClusterServiceImpl::Heartbeat(grpc::ServerContext*,
                                           const v1::HeartbeatRequest* request,
                                           v1::HeartbeatReply* reply) {
  if (request->worker_id() == 0) {
    return ToGrpcStatus(absl::InvalidArgumentError("worker_id: must be set (register first)"));
  }
  reply->set_known(membership_.Heartbeat(request->worker_id(), request->status()));
  return grpc::Status::OK;
}

grpc::Status ClusterServiceImpl::Deregister(grpc::ServerContext*,
                                            const v1::DeregisterRequest* request,
                                            v1::DeregisterReply*) {
  if (request->worker_id() == 0) {
    return ToGrpcStatus(absl::InvalidArgumentError("worker_id: must be set"));
  }
  if (request->reason().size() > 256) {
    return ToGrpcStatus(absl::InvalidArgumentError("reason: longer than 256 bytes"));
  }
  if (grpc::Status admitted = AdmitWorker(membership_, request->worker_id(),
                                          request->session_token(), "deregister");
      !admitted.ok()) {
    return admitted;
  }
  membership_.MarkDead(request->worker_id(), absl::StrCat("left (", request->reason(), ")"));
  return grpc::Status::OK;
}

grpc::Status ClusterServiceImpl::StoreSet(grpc::ServerContext*, const v1::StoreSetRequest* request,
                                          v1::StoreSetReply*) {
  if (grpc::Status admitted = AdmitWorker(membership_, request->worker_id(),
                                          request->session_token(), "store");
      !admitted.ok()) {
    return admitted;
  }
  absl::Status valid = ValidateKey(request->key());
  if (valid.ok() && request->value().size() > kMaxStoreValueBytes) {
    valid = absl::InvalidArgumentError(absl::StrCat("value of store key '", request->key(),
                                                    "': ", request->value().size(),
                                                    " bytes, limit ", kMaxStoreValueBytes));
  }
  if (!valid.ok()) return ToGrpcStatus(valid);
  store_.Set(request->key(), request->value());
  return grpc::Status::OK;
}

grpc::Status ClusterServiceImpl::StoreGet(grpc::ServerContext* context,
                                          const v1::StoreGetRequest* request,
                                          v1::StoreGetReply* reply) {
  if (grpc::Status admitted = AdmitWorker(membership_, request->worker_id(),
                                          request->session_token(), "store");
      !admitted.ok()) {
    return admitted;
  }
  absl::Status valid = ValidateKey(request->key());
  const std::chrono::milliseconds timeout(request->timeout_ms());
  if (valid.ok() && timeout > kMaxStoreWait) {
    valid = absl::InvalidArgumentError(absl::StrCat("timeout_ms: ", request->timeout_ms(),
                                                    " (limit ", kMaxStoreWait.count(), ")"));
  }
  if (!valid.ok()) return ToGrpcStatus(valid);
  absl::StatusOr<std::string> value =
      store_.Get(request->key(), timeout, [context] { return context->IsCancelled(); });
  if (!value.ok()) return ToGrpcStatus(value.status());
  reply->set_value(*std::move(value));
  return grpc::Status::OK;
}

grpc::Status ClusterServiceImpl::StoreAdd(grpc::ServerContext*, const v1::StoreAddRequest* request,
                                          v1::StoreAddReply* reply) {
  if (grpc::Status admitted = AdmitWorker(membership_, request->worker_id(),
                                          request->session_token(), "store");
      !admitted.ok()) {
    return admitted;
  }
  const absl::Status valid = ValidateKey(request->key());
  if (!valid.ok()) return ToGrpcStatus(valid);
  absl::StatusOr<int64_t> value = store_.Add(request->key(), request->delta());
  if (!value.ok()) return ToGrpcStatus(value.status());
  reply->set_value(*value);
  return grpc::Status::OK;
}

grpc::Status ClusterServiceImpl::Health(grpc::ServerContext*, const v1::HealthRequest*,
                                        v1::HealthReply* reply) {
  reply->set_serving(true);
  reply->set_protocol_version(kClusterProtocolVersion);
  reply->set_workers_alive(static_cast<uint32_t>(membership_.AliveCount()));
  return grpc::Status::OK;
}

}  // namespace strata

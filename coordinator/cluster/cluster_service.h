// ClusterServiceImpl: the strata.v1.ClusterService gRPC service (register, heartbeat,
// rendezvous store, health) over a Membership and a RendezvousStore.
//
// This is the service edge: every request field is validated here, failures are absl::Status
// values converted to grpc::Status only on return, and bad input never takes the process
// down. Include this header only where the service is constructed (it pulls in generated
// gRPC headers); everything else uses CoordinatorServer.
#pragma once

#include "absl/status/status.h"
#include "coordinator/cluster/membership.h"
#include "coordinator/cluster/rendezvous_store.h"
#include "strata/v1/cluster.grpc.pb.h"

namespace strata {

// Checks a RegisterRequest: protocol version (FailedPrecondition naming both versions), host,
// device kind, count and per-device memory (InvalidArgument naming the field).
absl::Status ValidateRegisterRequest(const v1::RegisterRequest& request);

class ClusterServiceImpl final : public v1::ClusterService::Service {
 public:
  // Neither is owned; both must outlive the service.
  ClusterServiceImpl(Membership& membership, RendezvousStore& store);

  grpc::Status Register(grpc::ServerContext* context, const v1::RegisterRequest* request,
                        v1::RegisterReply* reply) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatReply* reply) override;
  grpc::Status Deregister(grpc::ServerContext* context, const v1::DeregisterRequest* request,
                          v1::DeregisterReply* reply) override;
  grpc::Status StoreSet(grpc::ServerContext* context, const v1::StoreSetRequest* request,
                        v1::StoreSetReply* reply) override;
  grpc::Status StoreGet(grpc::ServerContext* context, const v1::StoreGetRequest* request,
                        v1::StoreGetReply* reply) override;
  grpc::Status StoreAdd(grpc::ServerContext* context, const v1::StoreAddRequest* request,
                        v1::StoreAddReply* reply) override;
  grpc::Status Health(grpc::ServerContext* context, const v1::HealthRequest* request,
                      v1::HealthReply* reply) override;

 private:
  Membership& membership_;
  RendezvousStore& store_;
};

}  // namespace strata

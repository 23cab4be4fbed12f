// CoordinatorServer: owns the cluster's Membership and RendezvousStore and serves them as
// strata.v1.ClusterService on a gRPC server. Generated gRPC types stay out of this header.
//
//   auto server = CoordinatorServer::Start({.host = "0.0.0.0", .port = 50051});
//   (*server)->membership().WaitForAlive(4, std::chrono::minutes(5));
//
// Thread-safe; Stop() (or destruction) wakes blocked store waits and stops within about a
// second even with RPCs in flight.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "proto/tls.h"
#include "coordinator/cluster/membership.h"
#include "coordinator/cluster/rendezvous_store.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace strata {

class ClusterServiceImpl;

struct CoordinatorServerOptions {
  std::string host = "0.0.0.0";
  int port = 0;  // 0 = an ephemeral port; see CoordinatorServer::port()
  MembershipOptions membership;
  TlsFiles tls;  // mutual TLS with the workers (none: plaintext)
};

class CoordinatorServer {
 public:
  // Binds host:port and starts serving. Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(
      const CoordinatorServerOptions& options);
  ~CoordinatorServer();
  CoordinatorServer(const CoordinatorServer&) = delete;
  CoordinatorServer& operator=(const CoordinatorServer&) = delete;

  // Stops serving: fails blocked StoreGets with Unavailable, cancels what is still running
  // after a short grace period. Idempotent.
  void Stop();

  int port() const { return port_; }  // the bound port
  // "host:port" a client on this machine can dial (127.0.0.1 when bound to a wildcard).
  std::string address() const;

  Membership& membership() { return *membership_; }
  RendezvousStore& store() { return *store_; }

 private:
  CoordinatorServer() = default;

  std::string host_;
  int port_ = 0;
  std::unique_ptr<Membership> membership_;
  std::unique_ptr<RendezvousStore> store_;
  std::unique_ptr<ClusterServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace strata

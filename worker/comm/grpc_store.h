// GrpcStore: a KeyValueStore served by the coordinator's StoreSet / StoreGet / StoreAdd RPCs
// (strata.v1.ClusterService). Multi-host Gloo and NCCL groups rendezvous through it; a
// FileStore does the same job for single-host runs. The coordinator serves registered workers
// only: every call presents the session of SetSession.
//
// Calls wait for the channel to be ready (a worker may start before its coordinator) up to
// their deadline. Get waits longer than the coordinator's per-call limit (kMaxStoreWait) by
// asking again. Thread-safe; generated gRPC types stay in grpc_store.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "proto/tls.h"
#include "worker/comm/store.h"

namespace strata {

class GrpcStore : public KeyValueStore {
 public:
  // `target` is the coordinator's "host:port". `rpc_timeout` bounds Set and Add (and the
  // connection wait of each call). `tls`: mutual TLS with the coordinator (checked by the
  // caller: see proto/tls.h); none, plaintext.
  explicit GrpcStore(const std::string& target,
                     std::chrono::milliseconds rpc_timeout = std::chrono::seconds(30),
                     const TlsFiles& tls = {});
  ~GrpcStore() override;

  // The registration every call presents (WorkerAgent's worker_id and session token; the
  // coordinator admits registered workers only). Updated on each new registration.
  void SetSession(uint64_t worker_id, std::string token);

  absl::Status Set(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::string> Get(const std::string& key,
                                  std::chrono::milliseconds timeout) override;
  absl::StatusOr<int64_t> Add(const std::string& key, int64_t delta) override;

 private:
  struct Stub;  // the generated stub and its channel
  absl::StatusOr<std::string> GetOnce(const std::string& key, std::chrono::milliseconds timeout);

  // The session the calls present, copied into each request.
  template <typename Request>
  void Present(Request& request) const;

  std::string target_;
  std::chrono::milliseconds rpc_timeout_;
  std::unique_ptr<Stub> stub_;
  mutable std::mutex mu_;  // guards the session
  uint64_t worker_id_ = 0;
  std::string token_;
};

}  // namespace strata

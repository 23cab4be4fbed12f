// WorkerServer: the worker's side of strata.v1.WorkerService (proto/strata/v1/worker.proto).
// It holds at most one loaded shard: the ModelRunner for its layers and TP slice, its
// collective groups (Gloo over TCP, rendezvous through the coordinator's store), and the block
// tables of the sequences the coordinator has sent it.
//
//   Load   drops the current shard, joins the TP group of its stage and the pipeline group
//          of its TP index (keys namespaced by the load's generation), loads the weights,
//          streams progress.
//   Step   runs each StepRequest in order through the shard's ShardRuntime
//          (worker/runtime/shard_runtime.h): validated as a whole first, then stage by stage;
//          the last stage's TP rank 0 samples on its backend and returns the tokens.
//   Release / StepRequest.release  forget sequences.
//
// Generated gRPC types stay in worker_server.cc.
//
//   auto server = WorkerServer::Start({.coordinator = "10.0.0.1:50051"});
//   WorkerAgent::Start({.coordinator = ..., .host = (*server)->address(), ...});
#pragma once

#include <memory>
#include <string>

#include "proto/tls.h"
#include "absl/status/statusor.h"
#include "common/device.h"

namespace strata {

struct WorkerServerOptions {
  std::string bind_host = "0.0.0.0";
  int port = 0;                // 0 = ephemeral
  // The address peers and the coordinator reach this worker at (also used by Gloo).
  std::string advertise_host = "127.0.0.1";
  std::string coordinator;     // "host:port" of the coordinator (its rendezvous store)
  int default_threads = 1;     // compute threads when a Load does not say
  DeviceSpec device;           // the backend shards run on
  TlsFiles tls;                // mutual TLS with the coordinator (none: plaintext)
};

class WorkerServer {
 public:
  // Binds and starts serving. Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<WorkerServer>> Start(const WorkerServerOptions& options);
  ~WorkerServer();
  WorkerServer(const WorkerServer&) = delete;
  WorkerServer& operator=(const WorkerServer&) = delete;

  // Stops serving (open streams are cancelled) and drops the shard. Idempotent.
  void Stop();

  // Refuses every step and load from now on (Unavailable: the worker is shutting down) and
  // waits up to `timeout` for the one in progress to finish. False when it did not.
  bool Drain(std::chrono::milliseconds timeout);

  int port() const;
  // "advertise_host:port": what this worker registers with.
  std::string address() const;

 private:
  struct Impl;
  explicit WorkerServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata

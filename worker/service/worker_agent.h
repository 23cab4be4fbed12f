// WorkerAgent: a worker's membership in the cluster. Registers with the coordinator, then
// heartbeats on a background thread at the interval the coordinator asked for. When the
// coordinator answers that it does not know this worker (it restarted, or declared us dead),
// the agent registers again, asking to keep its id. RPC failures (coordinator down) are
// retried at the next tick and visible through last_error().
//
// Thread-safe. Stop() (or destruction) ends the thread within one RPC timeout.
#pragma once

#include <chrono>
#include <functional>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/cluster_protocol.h"
#include "proto/tls.h"

namespace strata {

struct WorkerAgentOptions {
  std::string coordinator;        // "host:port" of the coordinator's cluster service
  std::string host;               // this worker's address, as peers reach it
  DeviceInventory inventory;
  std::chrono::milliseconds rpc_timeout{5000};
  uint32_t protocol_version = kClusterProtocolVersion;  // overridable for tests only
  TlsFiles tls;  // mutual TLS with the coordinator (none: plaintext)
  // Called after each successful registration with the worker id and the session token (the
  // coordinator's store wants it; a worker's loads carry it too). Must not block.
  std::function<void(uint64_t worker_id, const std::string& session_token)> on_registered;
};

class WorkerAgent {
 public:
  // Registers once (waiting up to rpc_timeout for the coordinator) and starts heartbeating.
  // Fails with the coordinator's error when it refuses us (FailedPrecondition on a protocol
  // mismatch, InvalidArgument naming a bad field), or Unavailable/DeadlineExceeded when it
  // cannot be reached.
  static absl::StatusOr<std::unique_ptr<WorkerAgent>> Start(WorkerAgentOptions options);
  ~WorkerAgent();
  WorkerAgent(const WorkerAgent&) = delete;
  WorkerAgent& operator=(const WorkerAgent&) = delete;

  // Stops heartbeating (the coordinator will declare this worker dead after its lease).
  void Stop();

  // Stops heartbeating and tells the coordinator this worker is leaving (`reason`), so it
  // counts it gone at once. Waits at most `timeout` for the answer.
  absl::Status Deregister(const std::string& reason, std::chrono::milliseconds timeout);

  uint64_t worker_id() const;
  int registrations() const;       // successful Register calls so far (1 after Start)
  absl::Status last_error() const;  // the latest failed RPC, OK once one succeeds again

 private:
  struct Rpc;  // the generated stub
  WorkerAgent(WorkerAgentOptions options, std::shared_ptr<grpc::ChannelCredentials> credentials);

  absl::Status Register();
  void HeartbeatLoop();
  void Beat();

  const WorkerAgentOptions options_;
  std::unique_ptr<Rpc> rpc_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  uint64_t worker_id_ = 0;
  std::string session_token_;  // of the current registration
  int registrations_ = 0;
  std::chrono::milliseconds interval_{1000};
  absl::Status last_error_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace strata

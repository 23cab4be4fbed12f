// CPU Communicator on Gloo's TCP transport. Gloo types stay in the .cc: this header is all
// callers see.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/comm/communicator.h"
#include "worker/comm/store.h"

namespace strata {

// How a GlooCommunicator joins its group.
struct GlooOptions {
  int rank = 0;
  int world_size = 1;
  // Address to bind and advertise to peers. When empty, `iface` (e.g. "eth0") picks it.
  std::string hostname = "127.0.0.1";
  std::string iface;
  // Bound on the rendezvous (each peer's address must appear in the store within it) and on
  // every operation afterwards.
  std::chrono::milliseconds timeout{30000};
  // Namespace of this group's keys in the store; must be unique per group incarnation
  // (e.g. "tp/stage0/gen3") when one store serves several groups or restarts.
  std::string store_prefix = "gloo";
  // Spin on the sockets while waiting for a peer instead of sleeping in recv: lower latency,
  // one busy core per waiting rank. Worth it only with more cores than ranks.
  bool busy_poll = false;
};

// Communicator over host memory using Gloo's TCP transport (full mesh between all ranks, pairs
// in synchronous mode: the calling thread does the socket I/O; see gloo_communicator.cc). Gloo's exceptions never leave this class: they become absl::Status values naming the
// op, the rank and the peer. See communicator.h for the contracts.
class GlooCommunicator : public Communicator {
 public:
  // Connects to every other rank: publishes this rank's addresses under
  // "<store_prefix>/<rank>", waits for the others, then opens one TCP pair per peer.
  // DeadlineExceeded when a peer does not show up within options.timeout.
  // Side effect: the first call sets SIGPIPE to SIG_IGN when it still has the default action,
  // so a peer that dies mid-write is an error, not the end of this process.
  static absl::StatusOr<std::unique_ptr<GlooCommunicator>> Create(const GlooOptions& options,
                                                                  KeyValueStore& store);
  ~GlooCommunicator() override;

  int rank() const override;
  int world_size() const override;
  bool device_memory() const override { return false; }

  absl::Status AllReduceSum(float* data, int64_t n) override;
  absl::Status AllGather(const float* in, int64_t n, float* out) override;
  absl::Status Broadcast(float* data, int64_t n, int root) override;
  absl::Status Send(const float* data, int64_t n, int peer) override;
  absl::Status Recv(float* data, int64_t n, int peer) override;
  absl::Status Barrier() override;

 private:
  struct State;
  explicit GlooCommunicator(std::unique_ptr<State> state);

  std::unique_ptr<State> state_;
};

}  // namespace strata

// GPU Communicator on NCCL. No CUDA or NCCL types in this header: the stream is a void*
// holding a cudaStream_t.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/comm/communicator.h"
#include "worker/comm/store.h"

namespace strata {

// How an NcclCommunicator joins its group.
struct NcclOptions {
  int rank = 0;
  int world_size = 1;
  int device = 0;  // CUDA device ordinal this rank uses; made current by every call
  // cudaStream_t the operations are enqueued on; nullptr = the legacy default stream.
  void* stream = nullptr;
  // Bound on the rendezvous (unique id exchange + communicator init), on every operation with
  // wait_for_completion, and on every Synchronize().
  std::chrono::milliseconds timeout{60000};
  // When true (the default), each call waits for its work on `stream` to finish, polling NCCL
  // for asynchronous errors, and aborts the communicator on timeout. When false, calls only
  // enqueue (stream(); `stream` must be set): a tensor-parallel group on its backend's stream,
  // whose steps then wait for the host only once and can be recorded as CUDA graphs;
  // Synchronize() learns of failures (timeouts included).
  bool wait_for_completion = true;
  // Namespace of this group's keys in the store (unique per group incarnation).
  std::string store_prefix = "nccl";
};

// Communicator over device memory using NCCL. Rank 0 creates the unique id and publishes it
// under "<store_prefix>/unique_id"; every rank initialises non-blocking
// (ncclConfig_t::blocking = 0) and polls ncclCommGetAsyncError, so a rank that never shows up
// makes Create fail with DeadlineExceeded after options.timeout instead of hanging.
// On any error or timeout the NCCL communicator is aborted (ncclCommAbort) and this object is
// broken (see communicator.h).
class NcclCommunicator : public Communicator {
 public:
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(const NcclOptions& options,
                                                                  KeyValueStore& store);
  ~NcclCommunicator() override;

  int rank() const override;
  int world_size() const override;
  bool device_memory() const override { return true; }

  // All buffers are device pointers on options.device.
  absl::Status AllReduceSum(float* data, int64_t n) override;
  absl::Status AllGather(const float* in, int64_t n, float* out) override;
  absl::Status Broadcast(float* data, int64_t n, int root) override;
  absl::Status Send(const float* data, int64_t n, int peer) override;
  absl::Status Recv(float* data, int64_t n, int peer) override;
  absl::Status Barrier() override;

  // options.stream without wait_for_completion (calls only enqueue there), else nullptr.
  void* stream() const override;
  // Waits (bounded by options.timeout) for all work enqueued on the stream, the communicator's
  // and any other, reporting NCCL asynchronous errors.
  absl::Status Synchronize() override;

 private:
  struct State;
  explicit NcclCommunicator(std::unique_ptr<State> state);

  std::unique_ptr<State> state_;
};

}  // namespace strata

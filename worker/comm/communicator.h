// Collective communication between the ranks of one worker group (a TP group, or the stages
// of a pipeline).
//
// Communicator is what model code calls: all-reduce after row-parallel matmuls, all-gather of
// vocab-parallel logits, send/recv of activations between pipeline stages. Implementations:
// GlooCommunicator (CPU, TCP; gloo_communicator.h) and NcclCommunicator (GPU;
// nccl_communicator.h). Both rendezvous through a KeyValueStore (store.h).
//
// Contracts shared by every implementation:
//  * Collectives are called by every rank of the group in the same order with the same sizes.
//  * Buffers live in the implementation's memory space (host for Gloo, device for NCCL; see
//    device_memory()). `n` counts floats.
//  * No call hangs forever: a dead or stuck peer yields an error within the timeout the
//    communicator was created with (from Synchronize() for a stream-ordered one). After any error the communicator is broken: every later call
//    fails with FailedPrecondition quoting the first error; the group must be rebuilt.
//  * Not thread-safe: one thread at a time per communicator.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace strata {

// A fixed group of `world_size()` ranks, this process being `rank()`.
class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // True when buffers passed to this communicator must be device (GPU) pointers.
  virtual bool device_memory() const = 0;

  // data: [n], in place; on return every rank holds the element-wise sum over ranks. The
  // summation order is the implementation's, so float results may differ from a sequential
  // sum by rounding (exact for integer-valued floats below 2^24).
  virtual absl::Status AllReduceSum(float* data, int64_t n) = 0;

  // in: [n] this rank's part; out: [world_size, n], row r = rank r's `in`. `in` and `out` must
  // not overlap.
  virtual absl::Status AllGather(const float* in, int64_t n, float* out) = 0;

  // data: [n]; on return every rank holds `root`'s data.
  virtual absl::Status Broadcast(float* data, int64_t n, int root) = 0;

  // Sends data: [n] to `peer` (!= rank()), which must call Recv with the same n. Returns when
  // `data` may be reused; for large messages that can mean waiting for the peer's Recv, so
  // order sends and receives to avoid cycles (a pipeline chain is always safe).
  virtual absl::Status Send(const float* data, int64_t n, int peer) = 0;

  // Receives data: [n] from `peer` (!= rank()). Messages between two ranks arrive in the order
  // they were sent.
  virtual absl::Status Recv(float* data, int64_t n, int peer) = 0;

  // Returns once every rank has entered the barrier.
  virtual absl::Status Barrier() = 0;

  // The stream (a cudaStream_t) on which the calls above only enqueue their work and return,
  // in order with whatever else is queued there (a backend's ops); Synchronize() waits for it.
  // nullptr (Gloo; NCCL waiting for completion) when each call returns with its work done.
  virtual void* stream() const { return nullptr; }

  // Waits for everything queued on stream() so far (the backend's ops too), within the
  // communicator's timeout, which must therefore exceed the longest step: a dead or stuck peer
  // fails it with DeadlineExceeded and breaks the communicator. Without a stream every call
  // has waited for its work already: nothing is left to wait for.
  virtual absl::Status Synchronize() { return absl::OkStatus(); }
};

// The result of a (distributed) argmax: the maximum logit and its global vocabulary id.
struct ArgmaxResult {
  float value = 0.0f;
  int32_t id = -1;
};

// Argmax of one rank's vocab slice: logits: [vocab_end - vocab_begin], logit i belongs to id
// vocab_begin + i. Ties go to the lowest id; NaN never wins over a number. An empty slice gives
// {-inf, -1}, which loses to any real candidate.
ArgmaxResult LocalArgmax(const float* logits, int32_t vocab_begin, int32_t vocab_end);

// Greedy decoding over vocab-parallel logits: every rank passes its slice's logits
// (host memory, [vocab_end - vocab_begin]) and every rank gets the same global result: the
// maximum value, and on ties (within or across ranks) the lowest id — the order the
// single-process sampler and the golden files use. Implemented as an all-gather of one
// (value, id) pair per rank; the id travels bit-cast in a float, so it is exact.
// FailedPrecondition on a device-memory communicator (the GPU path reduces on device).
absl::StatusOr<ArgmaxResult> DistributedArgmax(Communicator& comm, const float* logits,
                                               int32_t vocab_begin, int32_t vocab_end);

}  // namespace strata

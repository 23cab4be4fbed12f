// NcclCommunicator: Strata's Communicator contract on NCCL (2.28 here).
//
// Timeouts: NCCL has none of its own, so the communicator is created non-blocking
// (config.blocking = 0). Every NCCL call may then return ncclInProgress; WaitReady() polls
// ncclCommGetAsyncError until the communicator settles, and WaitStream() polls the stream and
// the async error until the enqueued work finishes. Either past the deadline aborts the
// communicator (ncclCommAbort makes its kernels exit; on a thread of its own, see Fail) and
// latches DeadlineExceeded. The unique id travels through the KeyValueStore as raw bytes.
#include "worker/comm/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "worker/comm/comm_util.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;
using comm_internal::CheckCount;
using comm_internal::CheckRank;

// Between polls of a wait that began at `start`: a yield for its first 2 ms (a decode step's
// wait is short, and a sleep would add up to its length to every step), then 50 us sleeps.
void PollPause(Clock::time_point start) {
  if (Clock::now() - start < std::chrono::milliseconds(2)) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

}  // namespace

struct NcclCommunicator::State {
  NcclOptions options;
  ncclComm_t comm = nullptr;
  bool aborted = false;
  std::thread aborter;  // runs ncclCommAbort (Fail)
  std::shared_ptr<std::atomic<bool>> abort_done;

  // Also where Create fails after NCCL made the communicator: an abort started there is
  // waited for too (it is quick: no graph holds the communicator's work yet).
  ~State() {
    if (aborter.joinable()) {  // done once the graphs holding our work are gone (see Fail)
      const Clock::time_point deadline = Clock::now() + options.timeout;
      while (!abort_done->load() && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      if (abort_done->load()) {
        aborter.join();
      } else {
        STRATA_LOG_ERROR("{}: ncclCommAbort still waits after {} ms (a CUDA graph that "
                         "recorded this communicator's work outlives it); left running",
                         Context("destroy"), options.timeout.count());
        aborter.detach();
      }
    }
    if (barrier_scratch != nullptr) {
      cudaSetDevice(options.device);
      cudaFree(barrier_scratch);
    }
  }
  float* barrier_scratch = nullptr;  // [1] device float the barrier all-reduces
  comm_internal::ErrorLatch latch;

  cudaStream_t stream() const { return static_cast<cudaStream_t>(options.stream); }

  std::string Context(const char* op, int peer = -1) const {
    return comm_internal::OpContext("NCCL", op, options.rank, options.world_size, peer);
  }

  // Aborts the NCCL communicator (once) and latches `status`. ncclCommAbort first sets the
  // flag that makes the communicator's kernels exit, then waits until no CUDA graph holds its
  // work (NCCL 2.26 on). The graphs' owner (the backend) destroys them only after this error
  // has reached it, so the abort runs on a thread of its own, which the destructor waits for.
  absl::Status Fail(absl::Status status) {
    if (comm != nullptr && !aborted) {
      aborted = true;
      abort_done = std::make_shared<std::atomic<bool>>(false);
      aborter = std::thread([c = comm, device = options.device, done = abort_done] {
        cudaSetDevice(device);
        ncclCommAbort(c);
        done->store(true);
      });
    }
    return latch.Record(std::move(status));
  }

  absl::Status NcclError(const std::string& context, ncclResult_t r) {
    const char* detail = comm != nullptr ? ncclGetLastError(comm) : "";
    return Fail(absl::InternalError(absl::StrCat(context, ": ", ncclGetErrorString(r),
                                                 (detail && *detail) ? " — " : "",
                                                 detail ? detail : "")));
  }

  absl::Status Timeout(const std::string& context, const char* waiting_for) {
    return Fail(absl::DeadlineExceededError(
        absl::StrCat(context, ": ", waiting_for, " did not finish within ",
                     options.timeout.count(), " ms (a peer is dead or stuck); aborted")));
  }

  // Waits until the last NCCL call on the communicator leaves ncclInProgress.
  absl::Status WaitReady(const std::string& context, ncclResult_t r, Clock::time_point deadline) {
    const Clock::time_point start = Clock::now();
    while (r == ncclInProgress) {
      if (Clock::now() >= deadline) return Timeout(context, "NCCL call");
      PollPause(start);
      if (ncclCommGetAsyncError(comm, &r) != ncclSuccess) r = ncclInternalError;
    }
    if (r != ncclSuccess) return NcclError(context, r);
    return absl::OkStatus();
  }

  // Waits until the stream has drained, watching for NCCL asynchronous errors.
  absl::Status WaitStream(const std::string& context, Clock::time_point deadline) {
    const Clock::time_point start = Clock::now();
    while (true) {
      const cudaError_t e = cudaStreamQuery(stream());
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm, &async);
      if (async != ncclSuccess && async != ncclInProgress) return NcclError(context, async);
      if (e == cudaSuccess) return absl::OkStatus();
      if (e != cudaErrorNotReady) {
        return Fail(absl::InternalError(
            absl::StrCat(context, ": CUDA error ", cudaGetErrorString(e))));
      }
      if (Clock::now() >= deadline) return Timeout(context, "the enqueued operation");
      PollPause(start);
    }
  }

  // Shared tail of every operation: checks the broken latch, makes the device current, runs
  // `enqueue` (which returns the NCCL call's result) and waits as the options say.
  template <typename Enqueue>
  absl::Status Run(const char* op, int peer, Enqueue&& enqueue) {
    const std::string context = Context(op, peer);
    STRATA_RETURN_IF_ERROR(latch.CheckUsable(context));
    const Clock::time_point deadline = Clock::now() + options.timeout;
    if (cudaSetDevice(options.device) != cudaSuccess) {
      return Fail(absl::InternalError(absl::StrCat(context, ": cannot use device ",
                                                   options.device)));
    }
    STRATA_RETURN_IF_ERROR(WaitReady(context, enqueue(), deadline));
    if (!options.wait_for_completion) return absl::OkStatus();
    return WaitStream(context, deadline);
  }
};

NcclCommunicator::NcclCommunicator(std::unique_ptr<State> state) : state_(std::move(state)) {}

NcclCommunicator::~NcclCommunicator() {
  State& s = *state_;
  if (s.comm != nullptr && !s.aborted) {
    cudaSetDevice(s.options.device);
    // Finalize flushes pending work; bounded (WaitReady aborts on timeout) so a dead peer
    // cannot hang the destructor.
    const Clock::time_point deadline = Clock::now() + s.options.timeout;
    const absl::Status finalized =
        s.WaitReady("NCCL finalize", ncclCommFinalize(s.comm), deadline);
    if (finalized.ok()) ncclCommDestroy(s.comm);
  }
}  // ~State waits for an abort

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(
    const NcclOptions& options, KeyValueStore& store) {
  auto state = std::make_unique<State>();
  state->options = options;
  const std::string context = state->Context("rendezvous");
  if (options.world_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": world_size must be >= 1"));
  }
  STRATA_RETURN_IF_ERROR(
      CheckRank(context, "rank", options.rank, 0, options.world_size, /*allow_self=*/true));
  if (!options.wait_for_completion && options.stream == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        context, ": a communicator that only enqueues (wait_for_completion = false) needs the "
                 "stream to enqueue on"));
  }
  if (cudaSetDevice(options.device) != cudaSuccess) {
    return absl::FailedPreconditionError(
        absl::StrCat(context, ": no usable CUDA device ", options.device));
  }
  const Clock::time_point deadline = Clock::now() + options.timeout;

  // Unique id: made by rank 0, read by the others.
  ncclUniqueId id;
  const std::string key = absl::StrCat(options.store_prefix, "/unique_id");
  if (options.rank == 0) {
    const ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess) return state->NcclError(context, r);
    STRATA_RETURN_IF_ERROR(store.Set(key, std::string(id.internal, sizeof(id.internal))));
  } else {
    absl::StatusOr<std::string> bytes = store.Get(key, options.timeout);
    if (!bytes.ok()) {
      return absl::Status(bytes.status().code(),
                          absl::StrCat(context, ": rank 0 did not publish the NCCL id: ",
                                       bytes.status().message()));
    }
    if (bytes->size() != sizeof(id.internal)) {
      return absl::DataLossError(absl::StrCat(context, ": NCCL id under '", key, "' has ",
                                              bytes->size(), " bytes, expected ",
                                              sizeof(id.internal)));
    }
    std::memcpy(id.internal, bytes->data(), sizeof(id.internal));
  }

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  const ncclResult_t r =
      ncclCommInitRankConfig(&state->comm, options.world_size, id, options.rank, &config);
  if (state->comm == nullptr) return state->NcclError(context, r);
  STRATA_RETURN_IF_ERROR(state->WaitReady(context, r, deadline));
  if (cudaMalloc(&state->barrier_scratch, sizeof(float)) != cudaSuccess) {
    return state->Fail(absl::ResourceExhaustedError(
        absl::StrCat(context, ": cannot allocate the barrier scratch float")));
  }
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(std::move(state)));
}

int NcclCommunicator::rank() const { return state_->options.rank; }

int NcclCommunicator::world_size() const { return state_->options.world_size; }

absl::Status NcclCommunicator::AllReduceSum(float* data, int64_t n) {
  STRATA_RETURN_IF_ERROR(CheckCount(state_->Context("AllReduceSum"), n, data));
  if (n == 0) return absl::OkStatus();
  return state_->Run("AllReduceSum", -1, [&] {
    return ncclAllReduce(data, data, static_cast<size_t>(n), ncclFloat, ncclSum, state_->comm,
                         state_->stream());
  });
}

absl::Status NcclCommunicator::AllGather(const float* in, int64_t n, float* out) {
  const std::string context = state_->Context("AllGather");
  STRATA_RETURN_IF_ERROR(CheckCount(context, n, in));
  STRATA_RETURN_IF_ERROR(CheckCount(context, n, out));
  if (n == 0) return absl::OkStatus();
  return state_->Run("AllGather", -1, [&] {
    return ncclAllGather(in, out, static_cast<size_t>(n), ncclFloat, state_->comm,
                         state_->stream());
  });
}

absl::Status NcclCommunicator::Broadcast(float* data, int64_t n, int root) {
  const std::string context = state_->Context("Broadcast", root);
  STRATA_RETURN_IF_ERROR(CheckCount(context, n, data));
  STRATA_RETURN_IF_ERROR(CheckRank(context, "root", root, rank(), world_size(), true));
  if (n == 0) return absl::OkStatus();
  return state_->Run("Broadcast", root, [&] {
    return ncclBroadcast(data, data, static_cast<size_t>(n), ncclFloat, root, state_->comm,
                         state_->stream());
  });
}

absl::Status NcclCommunicator::Send(const float* data, int64_t n, int peer) {
  const std::string context = state_->Context("Send", peer);
  STRATA_RETURN_IF_ERROR(CheckCount(context, n, data));
  STRATA_RETURN_IF_ERROR(CheckRank(context, "peer", peer, rank(), world_size(), false));
  if (n == 0) return absl::OkStatus();
  return state_->Run("Send", peer, [&] {
    return ncclSend(data, static_cast<size_t>(n), ncclFloat, peer, state_->comm,
                    state_->stream());
  });
}

absl::Status NcclCommunicator::Recv(float* data, int64_t n, int peer) {
  const std::string context = state_->Context("Recv", peer);
  STRATA_RETURN_IF_ERROR(CheckCount(context, n, data));
  STRATA_RETURN_IF_ERROR(CheckRank(context, "peer", peer, rank(), world_size(), false));
  if (n == 0) return absl::OkStatus();
  return state_->Run("Recv", peer, [&] {
    return ncclRecv(data, static_cast<size_t>(n), ncclFloat, peer, state_->comm,
                    state_->stream());
  });
}

absl::Status NcclCommunicator::Barrier() {
  STRATA_RETURN_IF_ERROR(state_->Run("Barrier", -1, [&] {
    return ncclAllReduce(state_->barrier_scratch, state_->barrier_scratch, 1, ncclFloat,
                         ncclSum, state_->comm, state_->stream());
  }));
  // A barrier has to wait even when the other operations only enqueue.
  return state_->options.wait_for_completion ? absl::OkStatus() : Synchronize();
}

void* NcclCommunicator::stream() const {
  return state_->options.wait_for_completion ? nullptr : state_->options.stream;
}

absl::Status NcclCommunicator::Synchronize() {
  const std::string context = state_->Context("Synchronize");
  STRATA_RETURN_IF_ERROR(state_->latch.CheckUsable(context));
  cudaSetDevice(state_->options.device);
  return state_->WaitStream(context, Clock::now() + state_->options.timeout);
}

}  // namespace strata

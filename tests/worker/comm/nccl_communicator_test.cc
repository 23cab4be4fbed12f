// NcclCommunicator on real GPUs: one rank per device, ranks as threads of this process,
// rendezvous through a FileStore. Skips where no CUDA device exists. With one device only the
// single-rank group runs (send/recv needs a second rank).
#include "worker/comm/nccl_communicator.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"
#include "worker/comm/store.h"

namespace strata {
namespace {

int DeviceCount() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

// A device buffer of floats on the current device.
class DeviceFloats {
 public:
  explicit DeviceFloats(const std::vector<float>& host) : n_(host.size()) {
    EXPECT_EQ(cudaMalloc(&ptr_, n_ * sizeof(float)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(ptr_, host.data(), n_ * sizeof(float), cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  ~DeviceFloats() { cudaFree(ptr_); }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
  float* get() { return ptr_; }
  std::vector<float> ToHost() const {
    std::vector<float> host(n_);
    EXPECT_EQ(cudaMemcpy(host.data(), ptr_, n_ * sizeof(float), cudaMemcpyDeviceToHost),
              cudaSuccess);
    return host;
  }

 private:
  float* ptr_ = nullptr;
  size_t n_;
};

// Runs body(rank, comm) on `world` threads, rank r on device r. With `queued`, each rank's
// communicator only enqueues, on a stream of its own (comm.stream()).
void RunGroup(int world, const std::function<void(int, NcclCommunicator&)>& body,
              bool queued = false) {
  FileStore store(testing::TempDir("nccl_group"));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      ASSERT_EQ(cudaSetDevice(r), cudaSuccess);
      cudaStream_t stream = nullptr;
      if (queued) {
        ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
      }
      NcclOptions options;
      options.rank = r;
      options.world_size = world;
      options.device = r;
      options.stream = stream;
      options.wait_for_completion = !queued;
      options.timeout = std::chrono::seconds(60);
      absl::StatusOr<std::unique_ptr<NcclCommunicator>> comm =
          NcclCommunicator::Create(options, store);
      EXPECT_TRUE(comm.ok()) << comm.status();
      if (comm.ok()) body(r, **comm);
      comm = nullptr;  // before its stream
      if (stream != nullptr) cudaStreamDestroy(stream);
    });
  }
  for (std::thread& t : threads) t.join();
}

// All-reduce, all-gather and broadcast of integer-valued floats (exact sums).
void CheckCollectives(int rank, NcclCommunicator& comm) {
  const int world = comm.world_size();
  constexpr int64_t n = 1000;
  std::vector<float> host(n);  // [n]: (rank + 1) * i
  for (int64_t i = 0; i < n; ++i) host[i] = static_cast<float>((rank + 1) * i);
  DeviceFloats data(host);
  ASSERT_TRUE(comm.AllReduceSum(data.get(), n).ok());
  const std::vector<float> sum = data.ToHost();
  const int64_t rank_sum = world * (world + 1) / 2;
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sum[i], static_cast<float>(rank_sum * i));

  DeviceFloats in(std::vector<float>(n, static_cast<float>(rank)));
  DeviceFloats out(std::vector<float>(world * n, -1.0f));  // [world, n]
  ASSERT_TRUE(comm.AllGather(in.get(), n, out.get()).ok());
  const std::vector<float> gathered = out.ToHost();
  for (int r = 0; r < world; ++r) ASSERT_EQ(gathered[r * n + n - 1], static_cast<float>(r));

  DeviceFloats b(std::vector<float>(n, rank == 0 ? 42.0f : 0.0f));
  ASSERT_TRUE(comm.Broadcast(b.get(), n, 0).ok());
  ASSERT_EQ(b.ToHost()[n / 2], 42.0f);
  ASSERT_TRUE(comm.Barrier().ok());
}

class NcclCommunicatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (DeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(NcclCommunicatorTest, SingleRank) {
  RunGroup(1, [](int rank, NcclCommunicator& comm) {
    CheckCollectives(rank, comm);
    float* dummy = nullptr;
    EXPECT_TRUE(absl::IsInvalidArgument(comm.Send(dummy, 0, 0)));  // no peer but itself
  });
}

TEST_F(NcclCommunicatorTest, RanksInThreads) {
  const int world = std::min(DeviceCount(), 4);
  if (world < 2) GTEST_SKIP() << "needs two CUDA devices";
  RunGroup(world, [](int rank, NcclCommunicator& comm) {
    CheckCollectives(rank, comm);
    // Pipeline chain 0 -> 1 -> ... -> W-1, each stage adding its rank.
    constexpr int64_t n = 4096;
    DeviceFloats hidden(std::vector<float>(n, 0.0f));
    if (rank > 0) {
      ASSERT_TRUE(comm.Recv(hidden.get(), n, rank - 1).ok());
    }
    std::vector<float> host = hidden.ToHost();
    ASSERT_EQ(host[n - 1], static_cast<float>(rank * (rank - 1) / 2));
    for (float& v : host) v += static_cast<float>(rank);
    DeviceFloats next(host);
    if (rank + 1 < comm.world_size()) {
      ASSERT_TRUE(comm.Send(next.get(), n, rank + 1).ok());
    }
  });
}

// Queued on a stream (the way a TP group queues on its backend's): the calls only enqueue,
// so they can be recorded in a CUDA graph with the ops around them, and every replay runs them
// again on that replay's data. One device suffices (a group of one rank).
TEST_F(NcclCommunicatorTest, QueuedCollectivesReplayFromAGraph) {
  RunGroup(std::min(DeviceCount(), 4), [](int rank, NcclCommunicator& comm) {
    const int world = comm.world_size();
    const auto stream = static_cast<cudaStream_t>(comm.stream());
    ASSERT_NE(stream, nullptr);
    constexpr int64_t n = 1024;
    DeviceFloats src(std::vector<float>(n, 0.0f)), buf(std::vector<float>(n, 0.0f));
    DeviceFloats gathered(std::vector<float>(world * n, -1.0f));  // [world, n]
    // The graph: a copy in, the sum over ranks, every rank's sum gathered.
    cudaGraph_t graph = nullptr;
    ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    EXPECT_EQ(cudaMemcpyAsync(buf.get(), src.get(), n * sizeof(float), cudaMemcpyDeviceToDevice,
                              stream),
              cudaSuccess);
    EXPECT_TRUE(comm.AllReduceSum(buf.get(), n).ok());
    EXPECT_TRUE(comm.AllGather(buf.get(), n, gathered.get()).ok());
    ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
    cudaGraphExec_t raw = nullptr;
    const cudaError_t instantiated = cudaGraphInstantiate(&raw, graph, 0);
    cudaGraphDestroy(graph);
    ASSERT_EQ(instantiated, cudaSuccess);
    // Destroyed on every way out, before the communicator (whose teardown waits for the graphs
    // that recorded its work).
    const std::unique_ptr<std::remove_pointer_t<cudaGraphExec_t>, cudaError_t (*)(cudaGraphExec_t)>
        exec(raw, cudaGraphExecDestroy);

    const int64_t rank_sum = world * (world + 1) / 2;
    for (int round = 1; round <= 3; ++round) {
      std::vector<float> host(n);  // (rank + 1) * round * i: exact sums
      for (int64_t i = 0; i < n; ++i) host[i] = static_cast<float>((rank + 1) * round * i);
      ASSERT_EQ(cudaMemcpyAsync(src.get(), host.data(), n * sizeof(float), cudaMemcpyHostToDevice,
                                stream),
                cudaSuccess);
      ASSERT_EQ(cudaGraphLaunch(exec.get(), stream), cudaSuccess);
      ASSERT_TRUE(comm.Synchronize().ok());
      const std::vector<float> got = gathered.ToHost();
      for (int s = 0; s < world; ++s) {
        for (int64_t i = 0; i < n; i += 97) {
          ASSERT_EQ(got[s * n + i], static_cast<float>(rank_sum * round * i))
              << "round " << round << ", slot " << s << ", element " << i;
        }
      }
    }
  }, /*queued=*/true);
}

// Rank 0 of two, whose peer never comes: NCCL's initialisation is under way when the deadline
// passes, so the communicator is aborted inside Create, which must return DeadlineExceeded
// (not hang, not end the process). One device suffices.
TEST_F(NcclCommunicatorTest, APeerThatNeverJoinsFailsCreateWithinTheTimeout) {
  FileStore store(testing::TempDir("nccl_lonely"));
  NcclOptions options;
  options.rank = 0;
  options.world_size = 2;
  options.timeout = std::chrono::seconds(3);
  const auto start = std::chrono::steady_clock::now();
  const auto comm = NcclCommunicator::Create(options, store);
  ASSERT_FALSE(comm.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(comm.status())) << comm.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

// A communicator that only enqueues needs a stream to enqueue on: refused before any device is
// touched (so this runs without one).
TEST(NcclOptionsTest, QueuedCallsNeedAStream) {
  FileStore store(testing::TempDir("nccl_no_stream"));
  NcclOptions options;
  options.wait_for_completion = false;
  const auto comm = NcclCommunicator::Create(options, store);
  ASSERT_FALSE(comm.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(comm.status())) << comm.status();
  EXPECT_NE(comm.status().message().find("stream"), std::string::npos) << comm.status();
}

}  // namespace
}  // namespace strata

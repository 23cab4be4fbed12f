// NcclCommunicator on real GPUs: one rank per device, ranks as threads of this process,
// rendezvous through a FileStore. Skips where no CUDA device exists. With one device only the
// single-rank group runs (send/recv needs a second rank).
#include "worker/comm/nccl_communicator.h"

#include <cuda_runtime.h>

#include <functional>
#include <thread>
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

// Runs body(rank, comm) on `world` threads, rank r on device r.
void RunGroup(int world, const std::function<void(int, NcclCommunicator&)>& body) {
  FileStore store(testing::TempDir("nccl_group"));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      ASSERT_EQ(cudaSetDevice(r), cudaSuccess);
      NcclOptions options;
      options.rank = r;
      options.world_size = world;
      options.device = r;
      options.timeout = std::chrono::seconds(60);
      absl::StatusOr<std::unique_ptr<NcclCommunicator>> comm =
          NcclCommunicator::Create(options, store);
      ASSERT_TRUE(comm.ok()) << comm.status();
      body(r, **comm);
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

}  // namespace
}  // namespace strata

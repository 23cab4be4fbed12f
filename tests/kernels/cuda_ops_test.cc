// Each CUDA kernel against the CPU reference (reference_ops.h) on the device. Skips when no
// CUDA device is present. Tolerances: 1e-5 relative (+1e-6): the GPU's rsqrtf, expf and
// sincosf differ from glibc's by a few ulp.
#include <cuda_runtime.h>

#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/reference_ops.h"
#include "kernels/cuda/ops.h"
#include "tests/kernels/isa_test_util.h"

namespace strata::kernels {
namespace {

// A device copy of a host vector, freed on destruction.
template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(const std::vector<T>& host) : size_(host.size()) {
    EXPECT_EQ(cudaMalloc(&ptr_, size_ * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(ptr_, host.data(), size_ * sizeof(T), cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return ptr_; }
  std::vector<T> ToHost() const {
    std::vector<T> host(size_);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(host.data(), ptr_, size_ * sizeof(T), cudaMemcpyDeviceToHost),
              cudaSuccess);
    return host;
  }

 private:
  T* ptr_ = nullptr;
  size_t size_;
};

class CudaOpsTest : public testing::Test {
 protected:
  void SetUp() override {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
      GTEST_SKIP() << "no CUDA device";
    }
  }
};

TEST_F(CudaOpsTest, RmsNorm) {
  for (int64_t dim : {1, 31, 256, 4099}) {
    const int64_t rows = 5;
    const std::vector<float> x = cpu::RandomFloats(rows * dim, 1, -3.0f, 3.0f);
    const std::vector<float> w = cpu::RandomFloats(dim, 2);
    std::vector<float> want(rows * dim);
    cpu::reference::RmsNorm(x.data(), w.data(), rows, dim, 1e-5f, want.data());
    DeviceBuffer<float> dx(x), dw(w), dy{std::vector<float>(rows * dim)};
    cuda::RmsNormParams p{dx.get(), dw.get(), dy.get(), rows, dim, 1e-5f};
    ASSERT_TRUE(cuda::LaunchRmsNorm(p, nullptr).ok());
    cpu::ExpectClose(dy.ToHost(), want, {}, 1e-5f, 1e-6f, "dim=" + std::to_string(dim));
  }
}

TEST_F(CudaOpsTest, Rope) {
  const int64_t tokens = 4, heads = 3, head_dim = 128;
  const std::vector<int32_t> positions = {0, 1, 77, 8191};
  for (bool interleaved : {false, true}) {
    for (int64_t rotary_dim : {int64_t{64}, head_dim}) {
      std::vector<float> inv_freq(rotary_dim / 2);
      for (int64_t i = 0; i < rotary_dim / 2; ++i) {
        inv_freq[i] = 1.0f / std::pow(10000.0f, 2.0f * i / rotary_dim);
      }
      std::vector<float> want = cpu::RandomFloats(tokens * heads * head_dim, 3);
      DeviceBuffer<float> dx(want), dfreq(inv_freq);
      DeviceBuffer<int32_t> dpos(positions);
      cpu::reference::ApplyRope(want.data(), tokens, heads, head_dim, positions.data(),
                                inv_freq.data(), rotary_dim,
                                interleaved ? RopeLayout::kInterleaved
                                            : RopeLayout::kHalfSplit,
                                1.1f);
      cuda::RopeParams p;
      p.x = dx.get();
      p.positions = dpos.get();
      p.inv_freq = dfreq.get();
      p.num_tokens = tokens;
      p.num_heads = heads;
      p.head_dim = head_dim;
      p.rotary_dim = rotary_dim;
      p.interleaved = interleaved;
      p.mscale = 1.1f;
      ASSERT_TRUE(cuda::LaunchRope(p, nullptr).ok());
      cpu::ExpectClose(dx.ToHost(), want, {}, 1e-5f, 1e-6f,
                       "rotary_dim=" + std::to_string(rotary_dim));
    }
  }
}

TEST_F(CudaOpsTest, SiluMul) {
  for (int64_t n : {1, 1000, 1 << 20}) {
    const std::vector<float> gate = cpu::RandomFloats(n, 4, -10.0f, 10.0f);
    const std::vector<float> up = cpu::RandomFloats(n, 5);
    std::vector<float> want(n);
    cpu::reference::SiluMul(gate.data(), up.data(), n, want.data());
    DeviceBuffer<float> dg(gate), du(up), dout{std::vector<float>(n)};
    ASSERT_TRUE(cuda::LaunchSiluMul({dg.get(), du.get(), dout.get(), n}, nullptr).ok());
    cpu::ExpectClose(dout.ToHost(), want, {}, 1e-5f, 1e-6f, "n=" + std::to_string(n));
  }
}

TEST(CudaOpsValidationTest, RejectsBadParams) {
  EXPECT_FALSE(cuda::LaunchRmsNorm({}, nullptr).ok());
  EXPECT_FALSE(cuda::LaunchRope({}, nullptr).ok());
  EXPECT_FALSE(cuda::LaunchSiluMul({}, nullptr).ok());
}

}  // namespace
}  // namespace strata::kernels

// The backend registry: which device kinds this binary has, and how asking for a GPU behaves
// with and without one (a clear FailedPrecondition at once, never a crash).
#include <algorithm>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/backend/backends.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

bool Built(DeviceKind kind) {
  const std::vector<DeviceKind> built = BuiltBackends();
  return std::find(built.begin(), built.end(), kind) != built.end();
}

TEST(BackendsTest, CpuIsAlwaysThere) {
  ASSERT_TRUE(Built(DeviceKind::kCpu));
  absl::StatusOr<DeviceInfo> info = ProbeDevice(DeviceSpec::Of(DeviceKind::kCpu, -1));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->host_memory);
  EXPECT_EQ(info->activation_dtype, DType::kF32);
}

// The CPU keeps its KV cache in f32: asking it for another is refused at once, naming why.
TEST(BackendsTest, CpuRefusesAKvDTypeItDoesNotKeep) {
  for (DType kv : {DType::kF8E4M3, DType::kBF16}) {
    const absl::Status status = ProbeDevice({DeviceKind::kCpu, -1, kv}).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << DTypeName(kv);
    EXPECT_THAT(status.message(), HasSubstr("keeps f32 only")) << status;
    BackendOptions options;
    options.device = {DeviceKind::kCpu, -1, kv};
    EXPECT_EQ(MakeBackend(options).status(), status);
  }
  absl::StatusOr<DeviceInfo> f32 = ProbeDevice({DeviceKind::kCpu, -1, DType::kF32});
  ASSERT_TRUE(f32.ok()) << f32.status();
  EXPECT_EQ(f32->kv_dtype, DType::kF32);
}

TEST(BackendsTest, CudaIsBuiltWhereNvccWas) {
#if STRATA_HAVE_CUDA_BACKEND
  EXPECT_TRUE(Built(DeviceKind::kCuda));
#else
  EXPECT_FALSE(Built(DeviceKind::kCuda));
  const absl::Status status = ProbeDevice(DeviceSpec::Of(DeviceKind::kCuda, -1)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("no backend for it"));
#endif
}

// With a GPU: its inventory (bf16 activations and cache, device memory). Without one: the
// reason, from ProbeDevice and MakeBackend alike.
TEST(BackendsTest, CudaReportsItsDeviceOrWhyThereIsNone) {
  if (!Built(DeviceKind::kCuda)) GTEST_SKIP() << "built without CUDA";
  absl::StatusOr<DeviceInfo> info = ProbeDevice(DeviceSpec::Of(DeviceKind::kCuda, 0));
  if (info.ok()) {
    EXPECT_EQ(info->kind, DeviceKind::kCuda);
    EXPECT_EQ(info->activation_dtype, DType::kBF16);
    EXPECT_EQ(info->kv_dtype, DType::kBF16);
    EXPECT_FALSE(info->host_memory);
    EXPECT_GT(info->memory_total, 0);
    EXPECT_GE(info->count, 1);
    absl::StatusOr<DeviceInfo> beyond =
        ProbeDevice(DeviceSpec::Of(DeviceKind::kCuda, info->count));
    EXPECT_EQ(beyond.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(beyond.status().message(), HasSubstr("CUDA device(s)"));
    // An fp8 cache is the GPU's to keep; a q8_0 one nobody's.
    absl::StatusOr<DeviceInfo> fp8 = ProbeDevice({DeviceKind::kCuda, 0, DType::kF8E4M3});
    ASSERT_TRUE(fp8.ok()) << fp8.status();
    EXPECT_EQ(fp8->kv_dtype, DType::kF8E4M3);
    BackendOptions options;
    options.device = {DeviceKind::kCuda, 0, DType::kF8E4M3};
    absl::StatusOr<std::unique_ptr<Backend>> backend = MakeBackend(options);
    ASSERT_TRUE(backend.ok()) << backend.status();
    EXPECT_EQ((*backend)->device().kv_dtype, DType::kF8E4M3);
    EXPECT_EQ(ProbeDevice({DeviceKind::kCuda, 0, DType::kQ8_0}).status().code(),
              absl::StatusCode::kInvalidArgument);
    return;
  }
  EXPECT_EQ(info.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(info.status().message(), HasSubstr("device 'cuda': no CUDA device is visible"));
  BackendOptions options;
  options.device = DeviceSpec::Of(DeviceKind::kCuda, 0);
  absl::StatusOr<std::unique_ptr<Backend>> backend = MakeBackend(options);
  EXPECT_EQ(backend.status(), info.status());
}

}  // namespace
}  // namespace strata

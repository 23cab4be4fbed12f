#include "worker/backend/backends.h"

#include "absl/strings/str_cat.h"
#include "worker/backend/cpu_backend.h"
#if STRATA_HAVE_CUDA_BACKEND
#include "worker/backend/cuda_backend.h"
#endif

namespace strata {

#if STRATA_HAVE_CUDA_BACKEND
std::vector<DeviceKind> BuiltBackends() { return {DeviceKind::kCpu, DeviceKind::kCuda}; }
#else
std::vector<DeviceKind> BuiltBackends() { return {DeviceKind::kCpu}; }
#endif

absl::StatusOr<DeviceInfo> ProbeDevice(const DeviceSpec& spec) {
  switch (spec.kind) {
    case DeviceKind::kCpu:
      return CpuDeviceInfo();
    case DeviceKind::kCuda:
#if STRATA_HAVE_CUDA_BACKEND
      return CudaDeviceInfo(spec.index);
#else
      break;
#endif
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "device '", DeviceKindName(spec.kind),
      "': this build of Strata has no backend for it (built: cpu; the CUDA backend is built "
      "where nvcc is found at configure time)"));
}

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const BackendOptions& options) {
  absl::StatusOr<DeviceInfo> device = ProbeDevice(options.device);
  if (!device.ok()) return device.status();
#if STRATA_HAVE_CUDA_BACKEND
  if (options.device.kind == DeviceKind::kCuda) return MakeCudaBackend(options.device.index);
#endif
  return MakeCpuBackend(options.threads);
}

}  // namespace strata

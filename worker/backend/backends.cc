#include "worker/backend/backends.h"

#include "absl/strings/str_cat.h"
#include "worker/backend/cpu_backend.h"

namespace strata {

std::vector<DeviceKind> BuiltBackends() { return {DeviceKind::kCpu}; }

absl::StatusOr<DeviceInfo> ProbeDevice(const DeviceSpec& spec) {
  switch (spec.kind) {
    case DeviceKind::kCpu:
      return CpuDeviceInfo();
    case DeviceKind::kCuda:
      break;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "device '", DeviceKindName(spec.kind),
      "': this build of Strata has no backend for it (built: cpu); the CUDA backend is not "
      "implemented yet"));
}

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const BackendOptions& options) {
  absl::StatusOr<DeviceInfo> device = ProbeDevice(options.device);
  if (!device.ok()) return device.status();
  return MakeCpuBackend(options.threads);
}

}  // namespace strata

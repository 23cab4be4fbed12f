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

namespace {

// `info` with the KV dtype `spec` asks for, if the backend keeps one of that type.
absl::StatusOr<DeviceInfo> WithKvDType(DeviceInfo info, const DeviceSpec& spec) {
  if (!spec.kv_dtype || *spec.kv_dtype == info.kv_dtype) return info;
  const bool gpu = info.kind == DeviceKind::kCuda;
  if (gpu && *spec.kv_dtype == DType::kF8E4M3) {
    info.kv_dtype = *spec.kv_dtype;
    return info;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "a KV cache of ", DTypeName(*spec.kv_dtype), " was asked for; the ",
      DeviceKindName(info.kind), " backend keeps ",
      gpu ? "bf16 (the default) or f8_e4m3" : "f32 only (f8_e4m3 is a GPU cache)"));
}

}  // namespace

absl::StatusOr<DeviceInfo> ProbeDevice(const DeviceSpec& spec) {
  switch (spec.kind) {
    case DeviceKind::kCpu:
      return WithKvDType(CpuDeviceInfo(), spec);
    case DeviceKind::kCuda: {
#if STRATA_HAVE_CUDA_BACKEND
      absl::StatusOr<DeviceInfo> info = CudaDeviceInfo(spec.index);
      if (!info.ok()) return info.status();
      if (spec.hopper_prefill) {
        if (absl::Status hopper = CheckHopperPrefill(info->index); !hopper.ok()) return hopper;
      }
      return WithKvDType(*std::move(info), spec);
#else
      break;
#endif
    }
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
  if (options.device.kind == DeviceKind::kCuda) {
    DeviceSpec spec = options.device;
    spec.kv_dtype = device->kv_dtype;
    return MakeCudaBackend(spec);
  }
#endif
  return MakeCpuBackend(options.threads);
}

}  // namespace strata

// The backends built into this binary, by device kind: what `strata worker --device` and the
// backend parity test choose from.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/device.h"
#include "worker/backend/backend.h"

namespace strata {

struct BackendOptions {
  DeviceSpec device;
  int threads = 0;  // CPU compute threads (0: every hardware thread)
};

// The device a backend for `spec` would run on, without creating one. FailedPrecondition
// naming the reason when this binary has no backend for the kind, the device is absent, or
// `spec.hopper_prefill` asks a GPU for what it cannot run (CheckHopperPrefill), so a worker
// refuses at start.
absl::StatusOr<DeviceInfo> ProbeDevice(const DeviceSpec& spec);

// A backend on `options.device`; the same errors as ProbeDevice.
absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const BackendOptions& options);

// Device kinds this binary has a backend for.
std::vector<DeviceKind> BuiltBackends();

}  // namespace strata

// The CPU backend (kernels/cpu on host memory; f32 activations and KV cache).
#pragma once

#include <memory>

#include "common/device.h"
#include "worker/backend/backend.h"

namespace strata {

// `num_threads` <= 0 uses every hardware thread.
std::unique_ptr<Backend> MakeCpuBackend(int num_threads);

// This host as a device: its memory (total, and MemAvailable as free) and the dtypes the CPU
// backend computes in.
DeviceInfo CpuDeviceInfo();

}  // namespace strata

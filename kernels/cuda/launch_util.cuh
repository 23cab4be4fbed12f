// Helpers shared by the .cu files of strata_kernels_cuda: launch-error checking.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "absl/status/status.h"

namespace strata::kernels::cuda {

// OK, or an internal error naming the kernel and the CUDA error of the last launch.
inline absl::Status LaunchStatus(const char* kernel) {
  const cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(std::string(kernel) + " launch failed: " + cudaGetErrorString(err));
}

inline cudaStream_t AsStream(void* stream) { return static_cast<cudaStream_t>(stream); }

}  // namespace strata::kernels::cuda

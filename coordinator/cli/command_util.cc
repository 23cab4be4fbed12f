// The helpers every subcommand shares (commands.h): exiting on errors, the model path, and
// the device flags and the backend they make.
#include <cstdio>
#include <cstdlib>

#include "CLI/CLI.hpp"
#include "common/logging.h"
#include "coordinator/cli/commands.h"
#include "worker/backend/backends.h"
#include "worker/model/synthetic_model.h"

namespace strata::cli {

void ExitIfError(const absl::Status& status) {
  if (status.ok()) return;
  std::fprintf(stderr, "strata: error: %s\n", std::string(status.message()).c_str());
  std::exit(1);
}

std::string ResolveModelPath(const std::string& model) {
  if (!model.empty()) return model;
  absl::StatusOr<std::string> path = EnsureDefaultModel();
  ExitIfError(path.status());
  STRATA_LOG_WARN("no --model given: using the embedded default {} (random weights, output "
                  "is not meaningful text)", *path);
  return *path;
}

void AddGpuFlags(CLI::App* cmd, GpuFlags* flags) {
  cmd->add_flag("--eager", flags->eager,
                "Queue every op of every step: no CUDA graphs (which replay decode steps recorded "
                "at load)")
      ->envname("STRATA_EAGER");
  cmd->add_flag("--per-shape-matmul", flags->per_shape_matmul,
                "Choose each projection's cuBLASLt algorithm per batch size (possibly faster; a "
                "request's numbers may then depend on the batch it runs in). Default: one "
                "algorithm per weight for every batch size, batch-invariant")
      ->envname("STRATA_PER_SHAPE_MATMUL");
  cmd->add_flag("--hopper-prefill", flags->hopper_prefill,
                "Run prefill attention on the Hopper kernel (wgmma and TMA; compute capability "
                "9.0 GPUs only) for the head dims and cache layouts it has: 64 and 128, bf16 "
                "cache, block size a multiple of 8 that divides 128 or is a multiple of it. "
                "Default: the portable kernel")
      ->envname("STRATA_HOPPER_PREFILL");
}

std::vector<std::string> GpuFlagArgs(const GpuFlags& flags) {
  std::vector<std::string> args;
  if (flags.eager) args.push_back("--eager");
  if (flags.per_shape_matmul) args.push_back("--per-shape-matmul");
  if (flags.hopper_prefill) args.push_back("--hopper-prefill");
  return args;
}

DeviceSpec DeviceSpecOrExit(const std::string& device, const std::string& kv_dtype,
                            const GpuFlags& gpu) {
  absl::StatusOr<DeviceSpec> spec = ParseDeviceSpec(device);
  ExitIfError(spec.status());
  spec->eager = gpu.eager;
  spec->per_shape_matmul = gpu.per_shape_matmul;
  spec->hopper_prefill = gpu.hopper_prefill;
  if (!kv_dtype.empty()) {
    absl::StatusOr<DType> parsed = ParseDType(kv_dtype);
    ExitIfError(parsed.status());
    spec->kv_dtype = *parsed;
  }
  return *spec;
}

void CheckDeviceOrExit(const std::string& device, const std::string& kv_dtype) {
  ExitIfError(ProbeDevice(DeviceSpecOrExit(device, kv_dtype)).status());
}

std::unique_ptr<LocalExecutor> LoadLocalOrExit(const std::string& path, int threads,
                                               const std::string& dtype, int64_t kv_tokens,
                                               const std::string& device,
                                               const std::string& kv_dtype,
                                               const GpuFlags& gpu) {
  LocalExecutorOptions options;
  options.model = path;
  options.backend.threads = threads;
  options.backend.device = DeviceSpecOrExit(device, kv_dtype, gpu);
  if (!dtype.empty()) {
    absl::StatusOr<DType> parsed = ParseWeightDType(dtype);
    ExitIfError(parsed.status());
    options.weight_dtype = *parsed;
  }
  options.kv_tokens = kv_tokens;
  absl::StatusOr<std::unique_ptr<LocalExecutor>> executor = LocalExecutor::Create(options);
  ExitIfError(executor.status());
  return *std::move(executor);
}

}  // namespace strata::cli

// The subcommands of the `strata` binary. Each Add*Command registers its flags on `app` (every
// flag also reads a STRATA_* environment variable) and its run callback.
#pragma once

#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "worker/runtime/local_executor.h"

namespace strata::cli {

void AddGenerateCommand(CLI::App& app);
void AddBenchCommand(CLI::App& app);
void AddSynthCommand(CLI::App& app);
void AddPlanCommand(CLI::App& app);
void AddWorkerCommand(CLI::App& app);
void AddCoordinatorCommand(CLI::App& app);
void AddServeCommand(CLI::App& app);
// `strata bench cluster`, registered under the `bench` subcommand.
void AddClusterBenchCommand(CLI::App& bench);
// `strata bench serve` (bench_serve.cc), a load generator against a running server.
void AddBenchServeCommand(CLI::App& bench);

// Resolves --model: the given path, or the embedded default model (generated on first use)
// when empty. Logs which one is used. Exits the process with a message on failure.
std::string ResolveModelPath(const std::string& model);

// How a GPU backend runs steps (the CPU's ignores them): DeviceSpec::eager,
// DeviceSpec::per_shape_matmul and DeviceSpec::hopper_prefill.
struct GpuFlags {
  bool eager = false;
  bool per_shape_matmul = false;
  bool hopper_prefill = false;
};
// Adds --eager, --per-shape-matmul and --hopper-prefill (and their STRATA_ environment names)
// to `cmd`.
void AddGpuFlags(CLI::App* cmd, GpuFlags* flags);
// The arguments that give a worker process the same `flags`.
std::vector<std::string> GpuFlagArgs(const GpuFlags& flags);

// `device` ("cpu", "cuda[:N]") with the KV cache element type `kv_dtype` (empty: the device's
// default), run as `gpu` says, parsed: exits with a message naming what is wrong.
DeviceSpec DeviceSpecOrExit(const std::string& device, const std::string& kv_dtype,
                            const GpuFlags& gpu = {});

// Parses and probes `device` with `kv_dtype`: exits with a message naming what is wrong (no
// such device, no GPU, a build without its backend, a KV dtype the backend does not keep)
// before anything else is done.
void CheckDeviceOrExit(const std::string& device, const std::string& kv_dtype = "");

// Loads `path` in this process on `device` ("cpu" with `threads`, 0 = all; "cuda[:N]") with a
// KV cache of `kv_dtype` (empty: the device's) for `kv_tokens` tokens, converting weights to
// `dtype` unless it is empty. Exits the process with a message on failure.
std::unique_ptr<LocalExecutor> LoadLocalOrExit(const std::string& path, int threads,
                                               const std::string& dtype, int64_t kv_tokens,
                                               const std::string& device = "cpu",
                                               const std::string& kv_dtype = "",
                                               const GpuFlags& gpu = {});

// The help of every --kv-dtype flag that makes a backend.
inline constexpr const char* kKvDTypeHelp =
    "Element type of the KV cache: the device's default (cpu f32, cuda bf16), or f8_e4m3 on a "
    "GPU (half the bytes of bf16, a scale per row)";

// Prints `status` as "strata: error: ..." and exits with code 1 when it is not OK.
void ExitIfError(const absl::Status& status);

}  // namespace strata::cli

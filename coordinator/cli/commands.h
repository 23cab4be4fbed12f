// The subcommands of the `strata` binary. Each Add*Command registers its flags on `app` (every
// flag also reads a STRATA_* environment variable) and its run callback.
#pragma once

#include <string>

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

// Parses and probes `device` ("cpu", "cuda[:N]"): exits with a message naming what is wrong
// (no such device, no GPU, a build without its backend) before anything else is done.
void CheckDeviceOrExit(const std::string& device);

// Loads `path` in this process on `device` ("cpu" with `threads`, 0 = all; "cuda[:N]") with a
// KV cache for `kv_tokens` tokens, converting weights to `dtype` unless it is empty. Exits the
// process with a message on failure.
std::unique_ptr<LocalExecutor> LoadLocalOrExit(const std::string& path, int threads,
                                               const std::string& dtype, int64_t kv_tokens,
                                               const std::string& device = "cpu");

// Prints `status` as "strata: error: ..." and exits with code 1 when it is not OK.
void ExitIfError(const absl::Status& status);

}  // namespace strata::cli

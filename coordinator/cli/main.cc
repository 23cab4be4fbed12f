// strata: one binary for every role. Subcommands: serve (coordinator + local workers),
// coordinator, worker (the distributed runtime), generate (offline, one process), bench
// (memory, generate, cluster), synth (write a deterministic random-weight model), plan (shard
// plan of a model over a cluster).
#include "CLI/CLI.hpp"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "coordinator/cli/commands.h"

int main(int argc, char** argv) {
  // Debian's Abseil is built with its debug checks on, so every absl::Mutex (gRPC's locks) is
  // entered into a process-wide lock-order graph under one global lock, and the graph's memory
  // grows with the mutexes ever created: the 30-minute soak saw the serving process gain
  // 64 KiB every few minutes from it. Deadlock detection is a debugging aid; not in a server.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"Strata: private, distributed inference for open-weight language models"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->envname("STRATA_LOG_LEVEL")
      ->capture_default_str();
  app.set_version_flag("--version", "strata 0.1.0");
  app.parse_complete_callback([&] { strata::SetLogLevel(log_level); });
  strata::cli::AddServeCommand(app);
  strata::cli::AddCoordinatorCommand(app);
  strata::cli::AddWorkerCommand(app);
  strata::cli::AddGenerateCommand(app);
  strata::cli::AddBenchCommand(app);
  strata::cli::AddSynthCommand(app);
  strata::cli::AddPlanCommand(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}

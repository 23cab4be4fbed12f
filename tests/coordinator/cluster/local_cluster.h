// A real cluster on 127.0.0.1 for tests: an in-process CoordinatorServer and `strata worker`
// processes started through LocalWorkers. The binary is the build's `strata` (the test target
// defines STRATA_BINARY_PATH), or $STRATA_BINARY when set.
#pragma once

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "coordinator/cluster/cluster_executor.h"
#include "coordinator/cluster/coordinator_server.h"
#include "coordinator/cluster/local_workers.h"
#include "tests/testing/strata_binary.h"

namespace strata::testing {

struct LocalCluster {
  std::unique_ptr<CoordinatorServer> server;
  std::vector<std::unique_ptr<LocalWorkers>> workers;  // one batch per Spawn
  std::unique_ptr<ClusterExecutor> executor;

  // Starts `count` more worker processes registering with this coordinator.
  absl::Status SpawnWorkers(int count) {
    auto spawned = LocalWorkers::Spawn(
        StrataBinary(),
        {"--log-level", "warn", "worker", "--coordinator", server->address(), "--listen",
         "127.0.0.1:0", "--advertise-host", "127.0.0.1", "--node-name", "local", "--memory",
         "4GiB", "--threads", "1"},
        count);
    if (!spawned.ok()) return spawned.status();
    workers.push_back(*std::move(spawned));
    return absl::OkStatus();
  }

  ~LocalCluster() {
    executor.reset();
    for (auto& w : workers) w->Stop();
    if (server != nullptr) server->Stop();
  }
};

// Waits (up to `timeout`) until process `pid` is stopped (SIGSTOP taken effect): a fault test
// must not race the signal.
inline bool WaitUntilStopped(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("State:", 0) == 0 && line.find('T') != std::string::npos) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

// Coordinator with fast leases (tests of failure detection shorten them further), `workers`
// worker processes, and (unless `start_executor` is false) an executor over them.
inline absl::StatusOr<std::unique_ptr<LocalCluster>> StartLocalCluster(
    ExecutorOptions options, int workers, MembershipOptions membership = {},
    bool start_executor = true) {
  if (StrataBinary().empty()) {
    return absl::FailedPreconditionError("no strata binary: set STRATA_BINARY");
  }
  auto cluster = std::make_unique<LocalCluster>();
  CoordinatorServerOptions server_options;
  server_options.host = "127.0.0.1";
  server_options.membership = membership;
  auto server = CoordinatorServer::Start(server_options);
  if (!server.ok()) return server.status();
  cluster->server = *std::move(server);
  if (absl::Status s = cluster->SpawnWorkers(workers); !s.ok()) return s;
  if (start_executor) {
    auto executor = ClusterExecutor::Start(cluster->server->membership(), std::move(options));
    if (!executor.ok()) return executor.status();
    cluster->executor = *std::move(executor);
  }
  return cluster;
}

}  // namespace strata::testing

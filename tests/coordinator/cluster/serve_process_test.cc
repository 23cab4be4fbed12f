// `strata serve` as a user runs it: it starts its worker processes, serves, and leaves none
// behind when it is stopped with SIGTERM, or even killed with SIGKILL (the workers die with
// their parent through PR_SET_PDEATHSIG).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/coordinator/cluster/local_cluster.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

// PIDs of the processes whose parent is `parent`.
std::vector<pid_t> Children(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream status(entry.path() / "status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("PPid:", 0) == 0) {
        if (std::stoi(line.substr(5)) == parent) out.push_back(std::stoi(name));
        break;
      }
    }
  }
  return out;
}

bool Alive(pid_t pid) {
  // A zombie still exists until reaped; look at its state.
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("State:", 0) == 0) return line.find('Z') == std::string::npos;
  }
  return false;
}

// Starts `strata serve --tp 2` and waits until both workers exist; returns (serve, workers).
std::pair<std::unique_ptr<LocalWorkers>, std::vector<pid_t>> StartServe() {
  auto serve = LocalWorkers::Spawn(
      testing::StrataBinary(), {"--log-level", "warn", "serve", "--tp", "2", "--pp", "1", "--http", "127.0.0.1:0"}, 1);
  EXPECT_TRUE(serve.ok()) << serve.status();
  if (!serve.ok()) return {};
  const pid_t pid = (*serve)->pids()[0];
  std::vector<pid_t> workers;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline && (workers = Children(pid)).size() < 2) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(workers.size(), 2u);
  return {*std::move(serve), workers};
}

void ExpectGone(const std::vector<pid_t>& pids) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  for (pid_t pid : pids) {
    while (Alive(pid) && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_FALSE(Alive(pid)) << "worker " << pid << " outlived strata serve";
  }
}

TEST(ServeProcessTest, SigtermStopsTheWorkers) {
  auto [serve, workers] = StartServe();
  ASSERT_NE(serve, nullptr);
  ASSERT_TRUE(Alive(serve->pids()[0]));
  serve->Signal(0, SIGTERM);
  ExpectGone(workers);
}

TEST(ServeProcessTest, SigkillStillTakesTheWorkersDown) {
  auto [serve, workers] = StartServe();
  ASSERT_NE(serve, nullptr);
  ASSERT_TRUE(Alive(serve->pids()[0]));
  serve->Signal(0, SIGKILL);
  ExpectGone(workers);
}

}  // namespace
}  // namespace strata

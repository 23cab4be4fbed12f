// `strata serve` as a user runs it: it starts its worker processes, serves, and leaves none
// behind when it is stopped with SIGTERM, or even killed with SIGKILL (the workers die with
// their parent through PR_SET_PDEATHSIG).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/coordinator/cluster/local_cluster.h"
#include "tests/testing/shared_data.h"
#include "worker/backend/backends.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

// A process: its pid and start time (/proc/PID/stat field 22, clock ticks since boot). The
// pair survives pid reuse — the suite forks thousands of processes and pids wrap — so a new
// process that takes a dead worker's pid is not mistaken for it.
struct Proc {
  pid_t pid = -1;
  std::string start;
};

std::string StartTime(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  const size_t comm_end = stat.rfind(')');
  if (comm_end == std::string::npos) return "";
  std::istringstream fields(stat.substr(comm_end + 1));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
  }
  return field;
}

// The processes whose parent is `parent`.
std::vector<Proc> Children(pid_t parent) {
  std::vector<Proc> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream status(entry.path() / "status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("PPid:", 0) == 0) {
        if (std::stoi(line.substr(5)) == parent) {
          const pid_t pid = std::stoi(name);
          out.push_back({pid, StartTime(pid)});
        }
        break;
      }
    }
  }
  return out;
}

bool Alive(const Proc& proc) {
  // A zombie still exists until reaped; look at its state.
  std::ifstream status("/proc/" + std::to_string(proc.pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("State:", 0) == 0) {
      return line.find('Z') == std::string::npos && StartTime(proc.pid) == proc.start;
    }
  }
  return false;
}

// Starts `strata serve --tp 2` and waits until both workers exist; returns (serve, workers).
std::pair<std::unique_ptr<LocalWorkers>, std::vector<Proc>> StartServe() {
  auto serve = LocalWorkers::Spawn(
      testing::StrataBinary(), {"--log-level", "warn", "serve", "--tp", "2", "--pp", "1", "--http", "127.0.0.1:0"}, 1);
  EXPECT_TRUE(serve.ok()) << serve.status();
  if (!serve.ok()) return {};
  const pid_t pid = (*serve)->pids()[0];
  std::vector<Proc> workers;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline && (workers = Children(pid)).size() < 2) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(workers.size(), 2u);
  for (const Proc& w : workers) EXPECT_FALSE(w.start.empty()) << "no start time for " << w.pid;
  return {*std::move(serve), workers};
}

void ExpectGone(const std::vector<Proc>& procs) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  for (const Proc& proc : procs) {
    while (Alive(proc) && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_FALSE(Alive(proc)) << "worker " << proc.pid << " outlived strata serve";
  }
}

TEST(ServeProcessTest, SigtermStopsTheWorkers) {
  auto [serve, workers] = StartServe();
  ASSERT_NE(serve, nullptr);
  ASSERT_TRUE(Alive({serve->pids()[0], StartTime(serve->pids()[0])}));
  serve->Signal(0, SIGTERM);
  ExpectGone(workers);
}

TEST(ServeProcessTest, SigkillStillTakesTheWorkersDown) {
  auto [serve, workers] = StartServe();
  ASSERT_NE(serve, nullptr);
  ASSERT_TRUE(Alive({serve->pids()[0], StartTime(serve->pids()[0])}));
  serve->Signal(0, SIGKILL);
  ExpectGone(workers);
}

// Without a GPU, every command that would run on one fails at once, naming why: no worker
// process is started, nothing crashes, nothing waits for a coordinator.
TEST(ServeProcessTest, DeviceCudaWithoutAGpuFailsAtOnceSayingWhy) {
  const absl::StatusOr<DeviceInfo> gpu = ProbeDevice(DeviceSpec::Of(DeviceKind::kCuda, 0));
  if (gpu.ok()) GTEST_SKIP() << "a CUDA device is present";
  const std::string why(gpu.status().message());
  for (const std::string command :
       {"serve --device cuda --tp 2 --pp 2 --http 127.0.0.1:0", "generate --device cuda --prompt hi",
        "worker --device cuda --coordinator 127.0.0.1:1"}) {
    SCOPED_TRACE(command);
    const testing::StrataRun run = testing::RunStrata(command);
    ASSERT_NE(run.code, -1) << run.output;
    EXPECT_EQ(run.code, 1) << run.output;  // 124 would be the timeout: it waited
    EXPECT_NE(run.output.find("strata: error: " + why), std::string::npos) << run.output;
  }
}

// A KV cache the CPU does not keep (f8_e4m3 is the GPU's), or a weight type no backend
// computes in, is refused at once by every command that would make a backend, naming why,
// before any model is written or worker started.
TEST(ServeProcessTest, AKvOrWeightTypeTheDeviceDoesNotKeepFailsAtOnce) {
  const std::pair<std::string, std::string> cases[] = {
      {"serve --kv-dtype f8_e4m3 --http 127.0.0.1:0", "the cpu backend keeps f32 only"},
      {"generate --kv-dtype f8_e4m3 --prompt hi", "the cpu backend keeps f32 only"},
      {"worker --kv-dtype f8_e4m3 --coordinator 127.0.0.1:1", "the cpu backend keeps f32 only"},
      {"bench generate --kv-dtype f8_e4m3", "the cpu backend keeps f32 only"},
      {"generate --kv-dtype f9 --prompt hi", "unknown dtype 'f9'"},
      {"generate --dtype f8_e4m3 --prompt hi", "'f8_e4m3' is not a weight type"},
  };
  for (const auto& [command, why] : cases) {
    SCOPED_TRACE(command);
    const testing::StrataRun run = testing::RunStrata(command);
    ASSERT_NE(run.code, -1) << run.output;
    EXPECT_EQ(run.code, 1) << run.output;
    EXPECT_NE(run.output.find(why), std::string::npos) << run.output;
  }
}

// The last line of `output` with text.
std::string LastLine(std::string output) {
  while (!output.empty() && output.back() == '\n') output.pop_back();
  return output.substr(output.rfind('\n') + 1);  // npos + 1 is 0
}

// The GPU's step flags, `--eager` (no CUDA graphs), `--per-shape-matmul` and
// `--hopper-prefill`, are taken by every command that makes a backend, serve passing them to
// its workers; on the CPU, which has neither graphs, cuBLASLt nor the Hopper kernel, the
// greedy text is the same either way.
TEST(ServeProcessTest, GpuFlagsAreTakenByEveryCommandThatMakesABackend) {
  const testing::StrataRun graphs =
      testing::RunStrata("--log-level warn generate --prompt hi -n 4");
  ASSERT_EQ(graphs.code, 0) << graphs.output;
  const std::pair<std::string, bool> commands[] = {  // (command, prints the text last)
      {"--log-level warn generate --eager --per-shape-matmul --hopper-prefill --prompt hi -n 4",
       true},
      {"--log-level warn serve --eager --per-shape-matmul --hopper-prefill --prompt hi "
       "--max-tokens 4",
       true},
      {"bench generate --eager --per-shape-matmul --hopper-prefill --prompt-tokens 8 "
       "--decode-tokens 4",
       false},
  };
  for (const auto& [command, text] : commands) {
    SCOPED_TRACE(command);
    const testing::StrataRun run = testing::RunStrata(command);
    EXPECT_EQ(run.code, 0) << run.output;
    if (text) {
      EXPECT_EQ(LastLine(run.output), LastLine(graphs.output));
    }
  }
  const testing::StrataRun worker =  // parsed: it fails registering, not on the flag
      testing::RunStrata("worker --eager --per-shape-matmul --hopper-prefill "
                         "--coordinator 127.0.0.1:1 --register-timeout-ms 300");
  EXPECT_EQ(worker.code, 1) << worker.output;
  EXPECT_NE(worker.output.find("register with coordinator"), std::string::npos) << worker.output;
}

// `strata serve --device cuda` gives each worker its own GPU through per-child arguments:
// child i runs with the shared arguments and then its own.
TEST(LocalWorkersTest, EachChildGetsItsOwnArguments) {
  const std::filesystem::path dir = testing::TempDir("local_workers_args");
  auto children = LocalWorkers::Spawn(
      "/bin/sh", {"-c", "echo \"$1 $2\" > \"$0/out.$2\"", dir.string(), "--device"}, 3,
      [](int i) { return std::vector<std::string>{std::to_string(i)}; });
  ASSERT_TRUE(children.ok()) << children.status();
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while ((*children)->Exited() < 3 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (int i = 0; i < 3; ++i) {
    std::ifstream in(dir / ("out." + std::to_string(i)));
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "--device " + std::to_string(i));
  }
}

}  // namespace
}  // namespace strata

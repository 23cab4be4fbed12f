// Latency of the CPU collectives a tensor-parallel decode step issues: AllReduceSum of a
// hidden-state row and AllGather of a logits slice, between `--ranks` forked processes on this
// machine (Gloo over loopback TCP, rendezvous through a FileStore).
//
//   strata_collective_bench [--ranks 2] [--floats 2048] [--iters 2000]
//
// Prints the median and p90 time per call, measured on rank 0 after a warm-up.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "worker/comm/gloo_communicator.h"
#include "worker/comm/store.h"

namespace {

using Clock = std::chrono::steady_clock;

int RunRank(int rank, int ranks, int64_t floats, int iters, const std::string& dir) {
  strata::FileStore store(dir);
  strata::GlooOptions options;
  options.rank = rank;
  options.world_size = ranks;
  options.store_prefix = "bench";
  auto comm = strata::GlooCommunicator::Create(options, store);
  if (!comm.ok()) {
    std::fprintf(stderr, "rank %d: %s\n", rank, comm.status().ToString().c_str());
    return 1;
  }
  std::vector<float> data(floats, 1.0f), gathered(floats * ranks);
  auto measure = [&](const char* name, auto&& op) {
    for (int i = 0; i < iters / 10; ++i) op();
    std::vector<double> us;
    for (int i = 0; i < iters; ++i) {
      const auto start = Clock::now();
      op();
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    }
    std::sort(us.begin(), us.end());
    if (rank == 0) {
      std::printf("%-12s %d ranks, %lld floats: p50 %.1f us, p90 %.1f us\n", name, ranks,
                  static_cast<long long>(floats), us[us.size() / 2], us[us.size() * 9 / 10]);
    }
  };
  measure("AllReduceSum", [&] { (void)(*comm)->AllReduceSum(data.data(), floats); });
  measure("AllGather", [&] { (void)(*comm)->AllGather(data.data(), floats, gathered.data()); });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int ranks = 2, iters = 2000;
  int64_t floats = 2048;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--ranks")) ranks = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--floats")) floats = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--iters")) iters = std::atoi(argv[i + 1]);
  }
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("strata-collective-bench-" + std::to_string(getpid())))
          .string();
  std::filesystem::create_directories(dir);
  std::vector<pid_t> children;
  for (int r = 0; r < ranks; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      const int rc = RunRank(r, ranks, floats, iters, dir);
      std::fflush(nullptr);
      _exit(rc);
    }
    children.push_back(pid);
  }
  int failed = 0;
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  std::filesystem::remove_all(dir);
  return failed == 0 ? 0 : 1;
}

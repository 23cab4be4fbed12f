#include "tests/worker/comm/multiprocess.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/str_cat.h"

namespace strata::testing {

using Clock = std::chrono::steady_clock;

std::string RankExit::Describe() const {
  std::string out = absl::StrCat("rank ", rank, ": ");
  if (hung) return absl::StrCat(out, "hung, killed after ", seconds, " s");
  if (signal != 0) return absl::StrCat(out, "killed by signal ", signal, " after ", seconds, " s");
  return absl::StrCat(out, "exit code ", exit_code, " after ", seconds, " s");
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<RankExit> RunRanks(int world, const std::function<int(int rank)>& body,
                               std::chrono::milliseconds limit) {
  std::fflush(nullptr);  // nothing buffered may be written twice
  const Clock::time_point start = Clock::now();
  std::vector<RankExit> exits(world);
  std::vector<pid_t> pids(world, -1);
  for (int r = 0; r < world; ++r) {
    exits[r].rank = r;
    const pid_t pid = fork();
    if (pid == 0) {
      int code = 2;
      try {
        code = body(r);
      } catch (...) {
        std::fprintf(stderr, "rank %d: uncaught exception\n", r);
      }
      std::fflush(nullptr);
      _exit(code);
    }
    pids[r] = pid;  // -1 (fork failed) is reported as a failed rank below
  }
  int running = 0;
  for (pid_t pid : pids) running += pid > 0 ? 1 : 0;
  while (running > 0) {
    for (int r = 0; r < world; ++r) {
      if (pids[r] <= 0) continue;
      int status = 0;
      if (waitpid(pids[r], &status, WNOHANG) != pids[r]) continue;
      exits[r].seconds = SecondsSince(start);
      if (WIFSIGNALED(status)) exits[r].signal = WTERMSIG(status);
      if (WIFEXITED(status)) exits[r].exit_code = WEXITSTATUS(status);
      pids[r] = -1;
      --running;
    }
    if (running > 0 && Clock::now() - start > limit) {
      for (int r = 0; r < world; ++r) {
        if (pids[r] <= 0) continue;
        kill(pids[r], SIGKILL);
        waitpid(pids[r], nullptr, 0);
        exits[r].hung = true;
        exits[r].seconds = SecondsSince(start);
        pids[r] = -1;
      }
      running = 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return exits;
}

}  // namespace strata::testing

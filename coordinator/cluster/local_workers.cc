#include "coordinator/cluster/local_workers.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace strata {

absl::StatusOr<std::unique_ptr<LocalWorkers>> LocalWorkers::Spawn(
    const std::string& binary, const std::vector<std::string>& args, int count) {
  std::unique_ptr<LocalWorkers> workers(new LocalWorkers());
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::vector<std::string> storage = {binary};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  for (int i = 0; i < count; ++i) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);  // the parent died before prctl
      // Signals blocked by the parent (strata serve waits for them) must not stay blocked.
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    workers->pids_.push_back(pid);
    workers->reaped_.push_back(false);
  }
  return workers;
}

LocalWorkers::~LocalWorkers() { Stop(); }

void LocalWorkers::Signal(int index, int signal) const {
  if (index >= 0 && index < static_cast<int>(pids_.size())) ::kill(pids_[index], signal);
}

int LocalWorkers::Exited() {
  int exited = 0;
  for (size_t i = 0; i < pids_.size(); ++i) {
    if (!reaped_[i]) {
      int status = 0;
      if (::waitpid(pids_[i], &status, WNOHANG) == pids_[i]) reaped_[i] = true;
    }
    exited += reaped_[i] ? 1 : 0;
  }
  return exited;
}

void LocalWorkers::Stop(std::chrono::milliseconds grace) {
  for (size_t i = 0; i < pids_.size(); ++i) {
    if (!reaped_[i]) {
      ::kill(pids_[i], SIGCONT);  // a stopped child cannot act on SIGTERM
      ::kill(pids_[i], SIGTERM);
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (Exited() < static_cast<int>(pids_.size()) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (size_t i = 0; i < pids_.size(); ++i) {
    if (reaped_[i]) continue;
    STRATA_LOG_WARN("worker process {} did not exit on SIGTERM: killing it", pids_[i]);
    ::kill(pids_[i], SIGKILL);
    ::waitpid(pids_[i], nullptr, 0);
    reaped_[i] = true;
  }
}

std::string LocalWorkers::SelfPath() {
  char path[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  return n > 0 ? std::string(path, static_cast<size_t>(n)) : std::string();
}

}  // namespace strata

#include "coordinator/cluster/local_workers.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(50);

std::string DescribeExit(int status) {
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  if (WIFEXITED(status)) return absl::StrCat("exited with code ", WEXITSTATUS(status));
  return "ended";
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalWorkers>> LocalWorkers::Spawn(
    const std::string& binary, const std::vector<std::string>& args, int count) {
  return Spawn(binary, args, count, nullptr);
}

absl::StatusOr<std::unique_ptr<LocalWorkers>> LocalWorkers::Spawn(
    const std::string& binary, const std::vector<std::string>& args, int count,
    const std::function<std::vector<std::string>(int index)>& per_child) {
  std::unique_ptr<LocalWorkers> workers(new LocalWorkers());
  workers->parent_ = ::getpid();
  workers->children_.resize(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    std::vector<std::string>& argv = workers->children_[i].argv;
    argv = {binary};
    argv.insert(argv.end(), args.begin(), args.end());
    if (per_child) {
      for (std::string& extra : per_child(i)) argv.push_back(std::move(extra));
    }
  }
  std::lock_guard<std::mutex> lock(workers->mu_);
  for (Child& child : workers->children_) STRATA_RETURN_IF_ERROR(workers->StartChild(child));
  return workers;
}

absl::Status LocalWorkers::StartChild(Child& child) {
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::vector<char*> argv;
  for (std::string& s : child.argv) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t parent = parent_;
  const pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
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
  child.pid = pid;
  child.reaped = false;
  return absl::OkStatus();
}

LocalWorkers::~LocalWorkers() { Stop(); }

bool LocalWorkers::ReapLocked(Child& child) {
  if (child.reaped) return true;
  int status = 0;
  if (::waitpid(child.pid, &status, WNOHANG) != child.pid) return false;
  child.reaped = true;
  child.last_exit = DescribeExit(status);
  return true;
}

void LocalWorkers::Supervise(RestartPolicy policy,
                             std::function<void(const absl::Status&)> on_crash_loop) {
  std::lock_guard<std::mutex> lock(mu_);
  if (supervisor_.joinable() || stopping_) return;
  supervisor_ = std::thread([this, policy, on_crash_loop = std::move(on_crash_loop)] {
    SuperviseLoop(policy, on_crash_loop);
  });
}

void LocalWorkers::SuperviseLoop(RestartPolicy policy,
                                 std::function<void(const absl::Status&)> on_crash_loop) {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    const auto now = Clock::now();
    for (size_t i = 0; i < children_.size(); ++i) {
      Child& child = children_[i];
      if (child.given_up) continue;
      if (!child.reaped) {
        if (!ReapLocked(child)) continue;
        while (!child.restarts.empty() && now - child.restarts.front() > policy.window) {
          child.restarts.pop_front();
        }
        const int recent = static_cast<int>(child.restarts.size());
        if (recent >= policy.max_restarts) {
          child.given_up = true;
          const absl::Status loop = absl::UnavailableError(absl::StrCat(
              "worker process ", i, " (pid ", child.pid, ") ", child.last_exit, " after ",
              recent, " restart(s) within ",
              std::chrono::duration_cast<std::chrono::seconds>(policy.window).count(),
              " s: it is crash-looping; not restarting it"));
          STRATA_LOG_ERROR("{}", std::string(loop.message()));
          if (on_crash_loop) {
            lock.unlock();
            on_crash_loop(loop);
            lock.lock();
          }
          continue;
        }
        const auto backoff = std::min<std::chrono::milliseconds>(
            policy.max_backoff, policy.first_backoff * (int64_t{1} << std::min(recent, 20)));
        child.restart_at = now + backoff;
        STRATA_LOG_WARN("worker process {} (pid {}) {}; restarting it in {} ms", i, child.pid,
                        child.last_exit, backoff.count());
        continue;
      }
      if (now < child.restart_at) continue;
      if (absl::Status started = StartChild(child); !started.ok()) {
        STRATA_LOG_ERROR("restarting worker process {}: {}", i, std::string(started.message()));
        child.restart_at = now + policy.max_backoff;
        continue;
      }
      child.restarts.push_back(now);
      ++total_restarts_;
      STRATA_LOG_INFO("worker process {} restarted as pid {}", i, child.pid);
    }
    stop_cv_.wait_for(lock, kPollInterval, [this] { return stopping_; });
  }
}

std::vector<pid_t> LocalWorkers::pids() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<pid_t> out;
  for (const Child& child : children_) out.push_back(child.pid);
  return out;
}

void LocalWorkers::Signal(int index, int signal) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (index >= 0 && index < static_cast<int>(children_.size()) && !children_[index].reaped) {
    ::kill(children_[index].pid, signal);
  }
}

int LocalWorkers::Exited() {
  std::lock_guard<std::mutex> lock(mu_);
  int exited = 0;
  for (Child& child : children_) exited += ReapLocked(child) ? 1 : 0;
  return exited;
}

int LocalWorkers::restarts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_restarts_;
}

void LocalWorkers::Stop(std::chrono::milliseconds grace) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (supervisor_.joinable() && supervisor_.get_id() != std::this_thread::get_id()) {
    supervisor_.join();
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (Child& child : children_) {
    if (!child.reaped) {
      ::kill(child.pid, SIGCONT);  // a stopped child cannot act on SIGTERM
      ::kill(child.pid, SIGTERM);
    }
  }
  const auto deadline = Clock::now() + grace;
  for (;;) {
    int exited = 0;
    for (Child& child : children_) exited += ReapLocked(child) ? 1 : 0;
    if (exited == static_cast<int>(children_.size()) || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (Child& child : children_) {
    if (child.reaped) continue;
    STRATA_LOG_WARN("worker process {} did not exit on SIGTERM: killing it", child.pid);
    ::kill(child.pid, SIGKILL);
    ::waitpid(child.pid, nullptr, 0);
    child.reaped = true;
  }
}

std::string LocalWorkers::SelfPath() {
  char path[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  return n > 0 ? std::string(path, static_cast<size_t>(n)) : std::string();
}

}  // namespace strata

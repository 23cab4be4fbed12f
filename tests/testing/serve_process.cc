#include "tests/testing/serve_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/testing/http_client.h"
#include "tests/testing/shared_data.h"
#include "tests/testing/strata_binary.h"

namespace strata::testing {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

absl::StatusOr<std::unique_ptr<ServeProcess>> ServeProcess::Start(
    const std::vector<std::string>& args, std::chrono::seconds timeout) {
  const std::string binary = StrataBinary();
  if (binary.empty()) return absl::FailedPreconditionError("no strata binary: set STRATA_BINARY");
  static int counter = 0;
  std::unique_ptr<ServeProcess> serve(new ServeProcess());
  serve->log_ = TempDir("serve_process") / absl::StrCat("serve", ++counter, ".log");
  std::vector<std::string> storage = {binary, "serve", "--http", "127.0.0.1:0", "--listen",
                                      "127.0.0.1:0"};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  const int fd = ::open(serve->log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot create ", serve->log_.string()));
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd);
    return absl::InternalError("fork failed");
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fd);
  serve->pid_ = pid;

  const std::regex port_line("HTTP API on port ([0-9]+)");
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      serve->pid_ = -1;
      return absl::FailedPreconditionError(
          absl::StrCat("strata serve exited with status ", status, ":\n", serve->Log()));
    }
    std::smatch match;
    const std::string log = serve->Log();
    if (serve->port_ == 0 && std::regex_search(log, match, port_line)) {
      serve->port_ = std::stoi(match[1]);
    }
    if (serve->port_ != 0 && HttpGet(serve->port_, "/health").status == 200) return serve;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("strata serve not ready within ", timeout.count(), " s:\n", serve->Log()));
}

ServeProcess::~ServeProcess() { Stop(); }

std::string ServeProcess::Log() const {
  std::ifstream in(log_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int ServeProcess::Wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  const auto deadline = Clock::now() + timeout;
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) != pid_) {
    if (Clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
  return status;
}

std::vector<pid_t> ServeProcess::Workers() const {
  std::vector<pid_t> out;
  if (pid_ <= 0) return out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream status(entry.path() / "status");
    std::string line;
    bool alive = true;
    pid_t parent = -1;
    while (std::getline(status, line)) {
      if (line.starts_with("State:")) alive = line.find('Z') == std::string::npos;
      if (line.starts_with("PPid:")) {
        parent = std::stoi(line.substr(5));
        break;
      }
    }
    if (alive && parent == pid_) out.push_back(std::stoi(name));
  }
  return out;
}

int ServeProcess::Stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + grace;
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) != pid_) {
    if (Clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
  return status;
}

}  // namespace strata::testing

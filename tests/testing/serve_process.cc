#include "tests/testing/serve_process.h"

#include <filesystem>
#include <fstream>
#include <regex>
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
  std::vector<std::string> argv = {binary, "serve", "--http", "127.0.0.1:0", "--listen",
                                   "127.0.0.1:0"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::unique_ptr<ServeProcess> serve(new ServeProcess());
  auto process = ChildProcess::Spawn(
      std::move(argv), TempDir("serve_process") / absl::StrCat("serve", ++counter, ".log"));
  if (!process.ok()) return process.status();
  serve->process_ = *std::move(process);

  const std::regex port_line("HTTP API on port ([0-9]+)");
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (const int status = serve->Wait(std::chrono::milliseconds(0)); status != -1) {
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

std::vector<pid_t> ServeProcess::Workers() const {
  std::vector<pid_t> out;
  const pid_t self = pid();
  if (self <= 0) return out;
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
    if (alive && parent == self) out.push_back(std::stoi(name));
  }
  return out;
}

}  // namespace strata::testing

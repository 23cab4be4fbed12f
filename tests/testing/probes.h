// Small probes for tests and benches that watch a running server from outside: a value from a
// Prometheus exposition, a field of /proc/PID/*, a process's open descriptors, and a poll with a
// deadline (fault-injection tests wait for the fault to be in place with it).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

namespace strata::testing {

// The value of the unlabelled series `name` in a text exposition, or -1 when it is absent.
inline double MetricValue(const std::string& exposition, const std::string& name) {
  const size_t at = ("\n" + exposition).find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::strtod(exposition.c_str() + at + name.size() + 1,
                                                    nullptr);
}

// The rest of the first line of /proc/PID/`file` that starts with `prefix` ("" if none).
inline std::string ProcField(pid_t pid, const std::string& file, const std::string& prefix) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(prefix)) return line.substr(prefix.size());
  }
  return {};
}

// A /proc/PID/status figure in kB ("VmRSS:", "RssAnon:"), or -1.
inline int64_t ProcStatusKb(pid_t pid, const std::string& key) {
  const std::string value = ProcField(pid, "status", key);
  return value.empty() ? -1 : std::atoll(value.c_str());
}

inline int64_t OpenFds(pid_t pid) {
  std::error_code ec;
  int64_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

// Polls `done` every 20 ms until it holds (true) or `timeout` passes (false).
inline bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace strata::testing

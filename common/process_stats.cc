#include "common/process_stats.h"

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

namespace strata {
namespace {

// Seconds since the epoch at which the system booted (/proc/stat's btime).
double BootTime() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime") return in >> value ? value : 0;
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace

ProcessStats ReadProcessStats() {
  ProcessStats out;
  // /proc/self/stat: "pid (comm) state ..." where comm may hold spaces and parentheses, so the
  // fields are counted from the last ')'; field 3 (state) is the first after it.
  std::ifstream in("/proc/self/stat");
  const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (const size_t close = stat.rfind(')'); close != std::string::npos) {
    std::istringstream fields(stat.substr(close + 1));
    std::string field;
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    for (int i = 3; fields >> field; ++i) {
      const double value = std::strtod(field.c_str(), nullptr);
      if (i == 14 || i == 15) out.cpu_seconds += value / ticks;  // utime, stime
      if (i == 22) out.start_time_seconds = BootTime() + value / ticks;
      if (i == 23) out.virtual_bytes = static_cast<int64_t>(value);
      if (i == 24) {
        out.resident_bytes = static_cast<int64_t>(value * page);
        break;
      }
    }
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++out.open_fds;
  }
  if (rlimit limit; getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    out.max_fds = static_cast<int64_t>(limit.rlim_cur);
  }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 heap = mallinfo2();
  out.heap_allocated_bytes = static_cast<int64_t>(heap.uordblks + heap.hblkhd);
  out.heap_free_bytes = static_cast<int64_t>(heap.fordblks);
#endif
  return out;
}

}  // namespace strata

// This process's resource use, read at scrape time: what the Prometheus process collector
// reports (from /proc/self) and malloc's own accounting (glibc's mallinfo2), which tells memory
// the program holds from memory the allocator keeps for reuse.
#pragma once

#include <cstdint>

namespace strata {

struct ProcessStats {
  int64_t resident_bytes = 0;
  int64_t virtual_bytes = 0;
  int64_t open_fds = 0;
  int64_t max_fds = 0;
  double cpu_seconds = 0;         // user + system
  double start_time_seconds = 0;  // since the Unix epoch
  // malloc: bytes allocated and not yet freed (arenas plus chunks mapped on their own), and
  // bytes free inside the arenas, kept for reuse rather than returned. -1 where unknown.
  int64_t heap_allocated_bytes = -1;
  int64_t heap_free_bytes = -1;
};

// Fields that cannot be read stay at their defaults.
ProcessStats ReadProcessStats();

}  // namespace strata

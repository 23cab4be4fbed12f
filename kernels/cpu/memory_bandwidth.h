// Peak memory bandwidth of this machine as seen by the CPU kernels: the roofline the decode
// matmul (which streams every weight once per token) is compared against.
#pragma once

#include <cstdint>

#include "common/thread_pool.h"

namespace strata::kernels::cpu {

struct BandwidthResult {
  double read_gbps = 0;  // streaming read, 1e9 bytes per second
  double copy_gbps = 0;  // memcpy, counting bytes read plus bytes written
  int threads = 0;
  int64_t bytes = 0;     // buffer size
};

// Reads a `bytes` buffer (rounded down to 4 MiB; should be far larger than the last-level
// cache) with every thread of `pool` streaming 4 MiB chunks, handed out dynamically, through
// the active ISA's vector loads, `repetitions` times, and reports the best pass. Copy
// bandwidth is measured the same way, each chunk's first half copied onto its second half.
// Allocates and first-touches the buffer from the pool's threads.
BandwidthResult MeasureMemoryBandwidth(ThreadPool& pool, int64_t bytes = int64_t{1} << 30,
                                       int repetitions = 5);

}  // namespace strata::kernels::cpu

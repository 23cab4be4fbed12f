// A barrier between streams of one GPU, queued like any op: the test group of cuda_tp_test.cc
// meets through it, so its collectives can be queued on a backend's stream (and recorded in
// a CUDA graph) as NCCL's are.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace strata::testing {

// Queues on `stream` rank `rank`'s pass through a barrier of `world` ranks that meet in
// `counters` (a zeroed uint32 per rank, on the device): the rank announces its arrival, then
// waits until every rank has arrived as often. Everything queued on `stream` before it is
// visible to every rank's later ops. A wait longer than `timeout_ns` sets *timed_out (a
// device int, shared by the group), and every later pass of the group then returns at once:
// the group is broken, and nothing hangs.
cudaError_t QueueDeviceBarrier(uint32_t* counters, int rank, int world, uint64_t timeout_ns,
                               int* timed_out, cudaStream_t stream);

}  // namespace strata::testing

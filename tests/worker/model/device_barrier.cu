#include "tests/worker/model/device_barrier.h"

namespace strata::testing {
namespace {

__device__ uint64_t GlobalNanoseconds() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// One thread. Only rank `rank` writes counters[rank] (its passes are ordered on its stream),
// so its count is the number of passes it has made; a peer has reached this pass when its
// count is at least this one (counts wrap after 2^32 passes: compared as a signed distance).
__global__ void ArriveAndWait(uint32_t* counters, int rank, int world, uint64_t timeout_ns,
                              int* timed_out) {
  __threadfence();  // this stream's earlier writes, before the arrival that publishes them
  const uint32_t pass = counters[rank] + 1;
  atomicExch(&counters[rank], pass);
  const uint64_t start = GlobalNanoseconds();
  for (int r = 0; r < world; ++r) {
    while (static_cast<int32_t>(atomicAdd(&counters[r], 0u) - pass) < 0) {
      if (atomicAdd(timed_out, 0) != 0 || GlobalNanoseconds() - start > timeout_ns) {
        atomicExch(timed_out, 1);
        return;
      }
      __nanosleep(256);
    }
  }
  __threadfence();  // the peers' writes, before this stream's later reads
}

}  // namespace

cudaError_t QueueDeviceBarrier(uint32_t* counters, int rank, int world, uint64_t timeout_ns,
                               int* timed_out, cudaStream_t stream) {
  ArriveAndWait<<<1, 1, 0, stream>>>(counters, rank, world, timeout_ns, timed_out);
  return cudaGetLastError();
}

}  // namespace strata::testing

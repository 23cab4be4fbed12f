// Logits processors on the device: one block per edited row, three stages separated by barriers
// (bias, repetition penalty, frequency and presence penalties), each stage's entries spread over
// the block's threads. Within a stage every id is touched by one thread: seen and counted ids
// are unique, and a repeated bias id's entries sit next to each other, so the thread holding
// the first of them adds them all, in order.
#include <cstdint>

#include "kernels/cuda/launch_util.cuh"
#include "kernels/cuda/ops.h"

namespace strata::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) LogitsEditKernel(const LogitsEditParams p) {
  const LogitsEditRow e = p.rows[blockIdx.x];
  float* row = p.logits + static_cast<int64_t>(e.row) * p.vocab;
  for (int32_t i = e.bias_begin + threadIdx.x; i < e.bias_end; i += kThreads) {
    const int32_t id = p.ids[i];
    if (i > e.bias_begin && p.ids[i - 1] == id) continue;  // added by the first of its run
    float l = row[id];
    for (int32_t j = i; j < e.bias_end && p.ids[j] == id; ++j) l = __fadd_rn(l, p.values[j]);
    row[id] = l;
  }
  __syncthreads();
  if (e.repetition_penalty != 1.0f) {
    for (int32_t i = e.seen_begin + threadIdx.x; i < e.seen_end; i += kThreads) {
      const int32_t id = p.ids[i];
      const float l = row[id];
      row[id] = l > 0.0f ? __fdiv_rn(l, e.repetition_penalty) : __fmul_rn(l, e.repetition_penalty);
    }
  }
  __syncthreads();
  if (e.frequency_penalty != 0.0f || e.presence_penalty != 0.0f) {
    for (int32_t i = e.counted_begin + threadIdx.x; i < e.counted_end; i += kThreads) {
      const int32_t id = p.ids[i];
      const float penalty = __fadd_rn(__fmul_rn(p.values[i], e.frequency_penalty), e.presence_penalty);
      row[id] = __fsub_rn(row[id], penalty);
    }
  }
}

}  // namespace

absl::Status LaunchLogitsEdit(const LogitsEditParams& params, void* stream) {
  if (params.num_rows < 0 || params.num_rows > 0x7fffffff || params.vocab <= 0 ||
      params.vocab > 0x7fffffff) {
    return absl::InvalidArgumentError("LaunchLogitsEdit: bad rows/vocab");
  }
  if (params.num_rows == 0) return absl::OkStatus();
  if (params.logits == nullptr || params.rows == nullptr || params.ids == nullptr ||
      params.values == nullptr) {
    return absl::InvalidArgumentError("LaunchLogitsEdit: null pointer");
  }
  LogitsEditKernel<<<static_cast<unsigned>(params.num_rows), kThreads, 0, AsStream(stream)>>>(
      params);
  return LaunchStatus("LogitsEditKernel");
}

}  // namespace strata::kernels::cuda

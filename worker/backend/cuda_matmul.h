// Dense projections on the GPU through cuBLASLt: y[m, n] = x[m, k] . w[n, k]^T with bf16 x and
// w, f32 accumulation, y in bf16 or f32. One plan (descriptors and the heuristic's algorithm)
// per (m, n, k, y type), cached. Algorithms with a split-K reduction are excluded, so an
// output row is reduced over k in one order (the batch size picks tile shapes, not how k is
// summed).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace strata {

class CudaMatMul {
 public:
  // `workspace_bytes` of device scratch for cuBLASLt, allocated here.
  static absl::StatusOr<std::unique_ptr<CudaMatMul>> Create(int64_t workspace_bytes);
  ~CudaMatMul();
  CudaMatMul(const CudaMatMul&) = delete;
  CudaMatMul& operator=(const CudaMatMul&) = delete;

  //   x: [m, k] bf16; w: [n, k] bf16 (row-major, contiguous); y: [m, n] bf16 or f32
  absl::Status Run(const void* x, const void* w, void* y, bool y_f32, int64_t m, int64_t n,
                   int64_t k, cudaStream_t stream);

 private:
  struct Plan;
  CudaMatMul() = default;
  absl::StatusOr<const Plan*> GetPlan(int64_t m, int64_t n, int64_t k, bool y_f32);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  int64_t workspace_bytes_ = 0;
  absl::flat_hash_map<std::tuple<int64_t, int64_t, int64_t, bool>, std::unique_ptr<Plan>> plans_;
};

}  // namespace strata

// Dense projections on the GPU through cuBLASLt: y[m, n] = x[m, k] . w[n, k]^T with bf16 x and
// w, f32 accumulation, y in bf16 or f32. One plan (descriptors and algorithm) per (m, n, k, y
// type), cached; algorithms with a split-K reduction are never taken.
//
// Batch invariance (the default): one algorithm per (n, k, y type) — the heuristic's for
// kPinnedRows rows — runs every row count m, so a row of y is computed by the same kernel, in
// the same order over k, however many rows share the call: a request's projections do not
// depend on its batch. (A row count cuBLASLt's check refuses it gets its own, with a
// warning.) Per shape (`per_shape`, `--per-shape-matmul`): the heuristic's
// algorithm for each m, which may pick a different kernel (tile, tensor-core instruction) for
// a different batch size, so a row's bits may change with the batch; possibly faster.
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
  static absl::StatusOr<std::unique_ptr<CudaMatMul>> Create(int64_t workspace_bytes,
                                                            bool per_shape = false);
  // The row count whose heuristic algorithm runs every row count unless per shape.
  static constexpr int64_t kPinnedRows = 64;
  // The alignment, in bytes, every operand must have (algorithms are chosen for it).
  static constexpr uint32_t kAlignment = 16;
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
  // Descriptors for (m, n, k, y type), their algorithm not yet chosen.
  absl::StatusOr<std::unique_ptr<Plan>> Describe(int64_t m, int64_t n, int64_t k, bool y_f32);
  // The heuristic's best algorithm without a split-K reduction for `plan`'s shape.
  absl::StatusOr<cublasLtMatmulAlgo_t> Heuristic(const Plan& plan, int64_t m, int64_t n,
                                                 int64_t k);

  bool per_shape_ = false;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  int64_t workspace_bytes_ = 0;
  absl::flat_hash_map<std::tuple<int64_t, int64_t, int64_t, bool>, std::unique_ptr<Plan>> plans_;
  // Batch invariance: the algorithm of each (n, k, y type).
  absl::flat_hash_map<std::tuple<int64_t, int64_t, bool>, cublasLtMatmulAlgo_t> pinned_;
};

}  // namespace strata

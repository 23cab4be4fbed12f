#include "worker/backend/cuda_matmul.h"

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace strata {
namespace {

absl::Status LtError(cublasStatus_t status, const char* what) {
  return absl::InternalError(absl::StrCat("cuBLASLt ", what, ": status ", static_cast<int>(status)));
}

}  // namespace

// Column-major view of the row-major product: y^T (n x m) = w (k x n)^T . x^T (k x m).
struct CudaMatMul::Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  ~Plan() {
    if (a != nullptr) cublasLtMatrixLayoutDestroy(a);
    if (b != nullptr) cublasLtMatrixLayoutDestroy(b);
    if (c != nullptr) cublasLtMatrixLayoutDestroy(c);
    if (op != nullptr) cublasLtMatmulDescDestroy(op);
  }
};

absl::StatusOr<std::unique_ptr<CudaMatMul>> CudaMatMul::Create(int64_t workspace_bytes,
                                                               bool per_shape) {
  std::unique_ptr<CudaMatMul> mm(new CudaMatMul());
  mm->per_shape_ = per_shape;
  if (cublasStatus_t s = cublasLtCreate(&mm->handle_); s != CUBLAS_STATUS_SUCCESS) {
    return LtError(s, "create");
  }
  if (cudaError_t e = cudaMalloc(&mm->workspace_, workspace_bytes); e != cudaSuccess) {
    return absl::ResourceExhaustedError(absl::StrCat("cuBLASLt workspace of ", workspace_bytes,
                                                     " bytes: ", cudaGetErrorString(e)));
  }
  mm->workspace_bytes_ = workspace_bytes;
  return mm;
}

CudaMatMul::~CudaMatMul() {
  plans_.clear();
  if (workspace_ != nullptr) cudaFree(workspace_);
  if (handle_ != nullptr) cublasLtDestroy(handle_);
}

absl::StatusOr<std::unique_ptr<CudaMatMul::Plan>> CudaMatMul::Describe(int64_t m, int64_t n,
                                                                       int64_t k, bool y_f32) {
  auto plan = std::make_unique<Plan>();
  cublasStatus_t s = cublasLtMatmulDescCreate(&plan->op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (s != CUBLAS_STATUS_SUCCESS) return LtError(s, "matmul descriptor");
  const cublasOperation_t transpose = CUBLAS_OP_T, none = CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose));
  cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof(none));
  const cudaDataType_t y_type = y_f32 ? CUDA_R_32F : CUDA_R_16BF;
  if ((s = cublasLtMatrixLayoutCreate(&plan->a, CUDA_R_16BF, k, n, k)) != CUBLAS_STATUS_SUCCESS ||
      (s = cublasLtMatrixLayoutCreate(&plan->b, CUDA_R_16BF, k, m, k)) != CUBLAS_STATUS_SUCCESS ||
      (s = cublasLtMatrixLayoutCreate(&plan->c, y_type, n, m, n)) != CUBLAS_STATUS_SUCCESS) {
    return LtError(s, "matrix layout");
  }
  return plan;
}

absl::StatusOr<cublasLtMatmulAlgo_t> CudaMatMul::Heuristic(const Plan& plan, int64_t m,
                                                           int64_t n, int64_t k) {
  cublasLtMatmulPreference_t pref = nullptr;
  cublasLtMatmulPreferenceCreate(&pref);
  const uint64_t ws = static_cast<uint64_t>(workspace_bytes_);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                       sizeof(ws));
  const uint32_t no_split_k = CUBLASLT_REDUCTION_SCHEME_NONE;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                       &no_split_k, sizeof(no_split_k));
  // Operands are only promised 16-byte alignment (views into the workspace, weight slices),
  // not the 256 bytes the heuristic assumes by default: a plan must work for any call.
  const uint32_t alignment = kAlignment;
  for (auto which : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                     CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                     CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                     CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES}) {
    cublasLtMatmulPreferenceSetAttribute(pref, which, &alignment, sizeof(alignment));
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(
      handle_, plan.op, plan.a, plan.b, plan.c, plan.c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (s != CUBLAS_STATUS_SUCCESS || found == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cuBLASLt has no bf16 algorithm for ", m, "x", n, "x", k, " (status ", static_cast<int>(s),
        "; rows of k values must be 16-byte aligned)"));
  }
  return result.algo;
}

absl::StatusOr<const CudaMatMul::Plan*> CudaMatMul::GetPlan(int64_t m, int64_t n, int64_t k,
                                                            bool y_f32) {
  const auto key = std::make_tuple(m, n, k, y_f32);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second.get();
  absl::StatusOr<std::unique_ptr<Plan>> plan = Describe(m, n, k, y_f32);
  if (!plan.ok()) return plan.status();
  if (per_shape_) {
    absl::StatusOr<cublasLtMatmulAlgo_t> algo = Heuristic(**plan, m, n, k);
    if (!algo.ok()) return algo.status();
    (*plan)->algo = *algo;
  } else {
    const auto weight = std::make_tuple(n, k, y_f32);
    auto pinned = pinned_.find(weight);
    if (pinned == pinned_.end()) {
      absl::StatusOr<std::unique_ptr<Plan>> reference = Describe(kPinnedRows, n, k, y_f32);
      if (!reference.ok()) return reference.status();
      absl::StatusOr<cublasLtMatmulAlgo_t> algo = Heuristic(**reference, kPinnedRows, n, k);
      if (!algo.ok()) return algo.status();
      pinned = pinned_.emplace(weight, *algo).first;
    }
    // The pinned algorithm must take this row count as it is (and within the workspace). If
    // cuBLASLt refuses, this row count gets its own algorithm, said once: serving goes on, but
    // rows computed at this count may differ in their last bits from other counts.
    cublasLtMatmulHeuristicResult_t check{};
    const cublasStatus_t s = cublasLtMatmulAlgoCheck(handle_, (*plan)->op, (*plan)->a, (*plan)->b,
                                                     (*plan)->c, (*plan)->c, &pinned->second,
                                                     &check);
    if (s == CUBLAS_STATUS_SUCCESS &&
        check.workspaceSize <= static_cast<size_t>(workspace_bytes_)) {
      (*plan)->algo = pinned->second;
    } else {
      absl::StatusOr<cublasLtMatmulAlgo_t> own = Heuristic(**plan, m, n, k);
      if (!own.ok()) return own.status();
      (*plan)->algo = *own;
      STRATA_LOG_WARN("cuBLASLt's algorithm for {}x{} weights (chosen for {} rows) does not take "
                      "{} rows (status {}): that row count runs its own, so batch invariance "
                      "does not hold across it",
                      n, k, kPinnedRows, m, static_cast<int>(s));
    }
  }
  const Plan* out = plan->get();
  plans_.emplace(key, *std::move(plan));
  return out;
}

absl::Status CudaMatMul::Run(const void* x, const void* w, void* y, bool y_f32, int64_t m,
                             int64_t n, int64_t k, cudaStream_t stream) {
  if (m == 0) return absl::OkStatus();
  for (const void* p : {x, w, static_cast<const void*>(y)}) {
    if (reinterpret_cast<uintptr_t>(p) % kAlignment != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cuBLASLt matmul ", m, "x", n, "x", k, ": operands must be ", kAlignment,
          "-byte aligned"));
    }
  }
  absl::StatusOr<const Plan*> plan = GetPlan(m, n, k, y_f32);
  if (!plan.ok()) return plan.status();
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t s =
      cublasLtMatmul(handle_, (*plan)->op, &alpha, w, (*plan)->a, x, (*plan)->b, &beta, y,
                     (*plan)->c, y, (*plan)->c, &(*plan)->algo, workspace_, workspace_bytes_, stream);
  if (s != CUBLAS_STATUS_SUCCESS) return LtError(s, "matmul");
  return absl::OkStatus();
}

}  // namespace strata

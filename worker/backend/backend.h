// Backend: where a model's tensors live and how its ops run. `cpu` runs kernels/cpu on host
// memory; a `cuda` backend implements the same interface on device memory. Model code
// (worker/model) is written once against this interface.
//
// Pointers passed to ops are pointers into buffers of the same backend. Step metadata
// (positions, slots, block tables, RoPE frequencies, gathered rows) is passed as host arrays;
// a device backend mirrors them.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/tensor.h"
#include "kernels/cpu/ops.h"

namespace strata {

// A weight as a backend stores it: a view plus whatever keeps its bytes alive (nothing for a
// zero-copy view of an mmap'ed file, an owned buffer for a converted copy).
struct Weight {
  TensorView view;
  std::shared_ptr<const void> storage;
};

// Backend-owned f32 memory (activations, KV cache).
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual float* data() = 0;
  virtual int64_t size() const = 0;  // elements
};

// The metadata of one step that attention needs, on the host.
struct AttentionBatch {
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  int64_t max_blocks_per_seq = 0;
  const int32_t* query_start = nullptr;   // [num_seqs + 1]
  const int32_t* context_lens = nullptr;  // [num_seqs]
  int64_t num_seqs = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view name() const = 0;

  // Makes `host` (a view of mmap'ed file bytes) usable by the ops, converted to `dtype`.
  // Zero-copy on the CPU when the dtype is unchanged.
  virtual absl::StatusOr<Weight> LoadWeight(const TensorView& host, DType dtype) = 0;
  // Zero-initialised f32 storage for `elements` values.
  virtual absl::StatusOr<std::unique_ptr<Buffer>> Allocate(int64_t elements) = 0;

  // Copies between host memory and this backend's buffers.
  virtual void CopyToHost(const float* src, float* dst, int64_t n) = 0;
  virtual void CopyFromHost(const float* src, float* dst, int64_t n) = 0;

  // The ops; contracts as in kernels/cpu/ops.h.
  virtual void MatMul(const float* x, int64_t m, const Weight& w, float* y) = 0;
  // ys[i] = x · ws[i]^T for weights that share x (q/k/v, gate/up), fused where possible.
  virtual void MatMulGroup(const float* x, int64_t m, absl::Span<const Weight* const> ws,
                           absl::Span<float* const> ys) = 0;
  virtual void Embedding(const Weight& table, const int32_t* tokens, int64_t n, float* out) = 0;
  virtual void RmsNorm(const float* x, const Weight& w, int64_t rows, int64_t dim, float eps,
                       float* y) = 0;
  virtual void Rope(float* x, int64_t num_tokens, int64_t num_heads, int64_t head_dim,
                    const int32_t* positions, const float* inv_freq, int64_t rotary_dim,
                    kernels::cpu::RopeLayout layout) = 0;
  virtual void SiluMul(const float* gate, const float* up, int64_t n, float* out) = 0;
  virtual void Add(float* x, const float* y, int64_t n) = 0;
  // dst[i, :] = src[rows[i], :] for i < n.   src: [*, dim]; dst: [n, dim]; rows on the host.
  virtual void GatherRows(const float* src, const int32_t* rows, int64_t n, int64_t dim,
                          float* dst) = 0;
  virtual void WriteKv(const kernels::cpu::PagedKv& cache, const float* k, const float* v,
                       const int32_t* slot_mapping, int64_t num_tokens) = 0;
  virtual void Attention(const float* q, const kernels::cpu::PagedKv& cache,
                         const AttentionBatch& batch,
                         const kernels::cpu::AttentionParams& params, float* out) = 0;
};

// The CPU backend; `num_threads` <= 0 uses every hardware thread.
std::unique_ptr<Backend> MakeCpuBackend(int num_threads);

}  // namespace strata

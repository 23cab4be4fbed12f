// The CPU backend: kernels/cpu over host memory, parallelised with one ThreadPool.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "common/thread_pool.h"
#include "kernels/cpu/ops.h"
#include "worker/backend/backend.h"

namespace strata {
namespace {

namespace k = kernels::cpu;

// 64-byte aligned, zeroed host memory.
class HostBuffer : public Buffer {
 public:
  explicit HostBuffer(int64_t n) : size_(n) {
    const size_t bytes = ((static_cast<size_t>(n) * sizeof(float)) + 63) / 64 * 64;
    data_ = static_cast<float*>(std::aligned_alloc(64, bytes == 0 ? 64 : bytes));
    if (data_ != nullptr) std::memset(data_, 0, bytes);
  }
  ~HostBuffer() override { std::free(data_); }
  float* data() override { return data_; }
  int64_t size() const override { return size_; }
  bool ok() const { return data_ != nullptr; }

 private:
  float* data_ = nullptr;
  int64_t size_;
};

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(int num_threads) : pool_(num_threads) {}

  std::string_view name() const override { return "cpu"; }

  absl::StatusOr<Weight> LoadWeight(const TensorView& host, DType dtype) override {
    if (host.dtype == dtype) return Weight{host, nullptr};
    const int64_t rows = host.Rows(), cols = host.Cols();
    if (!IsBlockAligned(dtype, cols)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot convert a row of ", cols, " values to ", DTypeName(dtype), " (blocks of ",
          GetDTypeInfo(dtype).block_elems, ")"));
    }
    const int64_t row_bytes = ElementsToBytes(dtype, cols);
    auto storage = std::shared_ptr<std::byte[]>(new std::byte[rows * row_bytes]);
    pool_.ParallelFor(rows, 16, [&](int64_t begin, int64_t end) {
      std::vector<float> row(cols);
      for (int64_t r = begin; r < end; ++r) {
        DequantizeRow(host.dtype, host.Row(r), row.data(), cols);
        QuantizeRow(dtype, row.data(), storage.get() + r * row_bytes, cols);
      }
    });
    Weight w;
    w.view = MakeView(dtype, host.shape, storage.get());
    w.storage = std::move(storage);
    return w;
  }

  absl::StatusOr<std::unique_ptr<Buffer>> Allocate(int64_t elements) override {
    auto buffer = std::make_unique<HostBuffer>(elements);
    if (!buffer->ok()) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot allocate ", elements * 4, " bytes of host memory"));
    }
    return buffer;
  }

  void CopyToHost(const float* src, float* dst, int64_t n) override {
    std::memcpy(dst, src, n * sizeof(float));
  }
  void CopyFromHost(const float* src, float* dst, int64_t n) override {
    std::memcpy(dst, src, n * sizeof(float));
  }

  void MatMul(const float* x, int64_t m, const Weight& w, float* y) override {
    k::MatMul(x, m, w.view, y, pool_);
  }
  void MatMulGroup(const float* x, int64_t m, absl::Span<const Weight* const> ws,
                   absl::Span<float* const> ys) override {
    absl::InlinedVector<const TensorView*, 4> views;
    for (const Weight* w : ws) {
      if (w->view.dtype != ws[0]->view.dtype || w->view.Cols() != ws[0]->view.Cols()) {
        for (size_t i = 0; i < ws.size(); ++i) k::MatMul(x, m, ws[i]->view, ys[i], pool_);
        return;
      }
      views.push_back(&w->view);
    }
    k::MatMulGroup(x, m, views, ys, pool_);
  }
  void Embedding(const Weight& table, const int32_t* tokens, int64_t n, float* out) override {
    k::EmbeddingLookup(table.view, tokens, n, out);
  }
  void RmsNorm(const float* x, const Weight& w, int64_t rows, int64_t dim, float eps,
               float* y) override {
    k::RmsNorm(x, reinterpret_cast<const float*>(w.view.data), rows, dim, eps, y);
  }
  void Rope(float* x, int64_t num_tokens, int64_t num_heads, int64_t head_dim,
            const int32_t* positions, const float* inv_freq, int64_t rotary_dim,
            k::RopeLayout layout) override {
    k::ApplyRope(x, num_tokens, num_heads, head_dim, positions, inv_freq, rotary_dim, layout);
  }
  void SiluMul(const float* gate, const float* up, int64_t n, float* out) override {
    k::SiluMul(gate, up, n, out);
  }
  void Add(float* x, const float* y, int64_t n) override { k::AddInPlace(x, y, n); }
  void GatherRows(const float* src, const int32_t* rows, int64_t n, int64_t dim,
                  float* dst) override {
    for (int64_t i = 0; i < n; ++i) {
      std::memmove(dst + i * dim, src + static_cast<int64_t>(rows[i]) * dim, dim * sizeof(float));
    }
  }
  void WriteKv(const k::PagedKv& cache, const float* key, const float* value,
               const int32_t* slot_mapping, int64_t num_tokens) override {
    k::WriteKv(cache, key, value, slot_mapping, num_tokens);
  }
  void Attention(const float* q, const k::PagedKv& cache, const AttentionBatch& batch,
                 const k::AttentionParams& params, float* out) override {
    k::PagedAttention(q, cache, batch.block_tables, batch.max_blocks_per_seq, batch.query_start,
                      batch.context_lens, batch.num_seqs, params, out, pool_);
  }

 private:
  ThreadPool pool_;
};

}  // namespace

std::unique_ptr<Backend> MakeCpuBackend(int num_threads) {
  return std::make_unique<CpuBackend>(num_threads);
}

}  // namespace strata

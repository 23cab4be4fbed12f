// MatMul / MatMulGroup: validates the views, quantizes activations once for q8_0/q4_0
// weights, and splits the output columns (weight rows) of every matrix across the pool in one
// parallel loop; the ISA table does the arithmetic
// (kernels_impl.h explains the tiling).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"
#include "common/status.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/ops.h"

namespace strata::kernels::cpu {
namespace {

// Weight rows per parallel chunk at least (one L2 panel), and chunks per thread: small chunks
// keep the threads finishing together, which matters in decode where a whole call is a few
// hundred microseconds.
constexpr int64_t kMinRowsPerChunk = 16;
constexpr int64_t kChunksPerThread = 16;

// One parallel loop over the rows of several weights: work item (matrix, [begin, end)).
// Chunks never straddle two matrices and are handed out dynamically.
struct RowChunk {
  int32_t matrix;
  int64_t begin, end;
};

template <class Fn>
void ParallelRows(ThreadPool& pool, absl::Span<const int64_t> rows, const Fn& fn) {
  int64_t total = 0;
  for (int64_t n : rows) total += n;
  const int64_t chunk =
      std::max(kMinRowsPerChunk, total / (pool.num_threads() * kChunksPerThread) / 16 * 16);
  thread_local std::vector<RowChunk> chunks;
  chunks.clear();
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int64_t b = 0; b < rows[i]; b += chunk) {
      chunks.push_back({static_cast<int32_t>(i), b, std::min(rows[i], b + chunk)});
    }
  }
  if (pool.num_threads() == 1 || chunks.size() == 1) {
    for (const RowChunk& c : chunks) fn(c);
    return;
  }
  std::atomic<size_t> next{0};
  const std::vector<RowChunk>& work = chunks;
  pool.RunOnAll([&](int) {
    for (size_t i = next.fetch_add(1); i < work.size(); i = next.fetch_add(1)) fn(work[i]);
  });
}

// Activations quantized to q8_0 for one call; reused across calls on the same thread.
struct QuantizedX {
  std::vector<BlockQ8_0> blocks;  // [m, k / 32]
  std::vector<float> scales;      // [m, k / 32], F16ToF32(blocks[i].d)
  std::vector<int32_t> corr;      // [m, k / 32, 8], q4_0 only: see QGemmArgs::xcorr
};

void QuantizeActivations(const IsaKernels& kernels, const float* x, int64_t m, int64_t k,
                         bool q4_corr, ThreadPool& pool, QuantizedX& out) {
  const int64_t kb = k / kQ8_0BlockElems;
  out.blocks.resize(m * kb);
  out.scales.resize(m * kb);
  if (q4_corr) out.corr.resize(m * kb * 8);
  auto quantize = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      kernels.quantize_q8(x + i * k, k, out.blocks.data() + i * kb);
      for (int64_t b = i * kb; b < (i + 1) * kb; ++b) {
        out.scales[b] = F16ToF32(out.blocks[b].d);
        if (!q4_corr) continue;
        for (int lane = 0; lane < 8; ++lane) {
          const int8_t* q = out.blocks[b].q + 4 * lane;
          out.corr[b * 8 + lane] = -8 * (q[0] + q[1] + q[2] + q[3]);
        }
      }
    }
  };
  // One row of 4096 takes a few microseconds: only large batches are worth the hand-out.
  if (m * k >= (1 << 16)) {
    pool.ParallelFor(m, 1, quantize);
  } else {
    quantize(0, m);
  }
}

}  // namespace

void MatMulGroup(const float* x, int64_t m, absl::Span<const TensorView* const> ws,
                 absl::Span<float* const> ys, ThreadPool& pool) {
  STRATA_CHECK(ws.size() == ys.size() && !ws.empty()) << "MatMulGroup: one output per weight";
  const int64_t k = ws[0]->Cols();
  const DType dtype = ws[0]->dtype;
  for (const TensorView* w : ws) {
    STRATA_CHECK(w->Cols() == k && w->dtype == dtype)
        << "MatMulGroup: weights must share k and dtype";
  }
  if (m <= 0) return;
  absl::InlinedVector<int64_t, 4> rows;
  for (const TensorView* w : ws) rows.push_back(w->Rows());
  const IsaKernels& kernels = ActiveKernels();
  if (dtype == DType::kQ8_0 || dtype == DType::kQ4_0) {
    STRATA_CHECK(k % kQ8_0BlockElems == 0) << "MatMul: k = " << k << " is not a multiple of 32";
    thread_local QuantizedX xq;
    const bool q4 = dtype == DType::kQ4_0;
    QuantizeActivations(kernels, x, m, k, q4, pool, xq);
    // Taken here: inside the loop `xq` would name each worker's own thread_local.
    const BlockQ8_0* x_blocks = xq.blocks.data();
    const float* x_scales = xq.scales.data();
    const int32_t* x_corr = q4 ? xq.corr.data() : nullptr;
    ParallelRows(pool, rows, [&](const RowChunk& c) {
      QGemmArgs args;
      args.xq = x_blocks;
      args.xd = x_scales;
      args.xcorr = x_corr;
      args.m = m;
      args.w = ws[c.matrix]->data;
      args.w_stride = ws[c.matrix]->row_stride_bytes;
      args.dtype = dtype;
      args.k_blocks = k / kQ8_0BlockElems;
      args.y = ys[c.matrix];
      args.ldy = rows[c.matrix];
      args.n_begin = c.begin;
      args.n_end = c.end;
      kernels.qgemm(args);
    });
    return;
  }
  STRATA_CHECK(dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16)
      << "MatMul: unsupported weight dtype " << DTypeName(dtype);
  ParallelRows(pool, rows, [&](const RowChunk& c) {
    GemmArgs args;
    args.x = x;
    args.ldx = k;
    args.m = m;
    args.w = ws[c.matrix]->data;
    args.w_stride = ws[c.matrix]->row_stride_bytes;
    args.dtype = dtype;
    args.k = k;
    args.y = ys[c.matrix];
    args.ldy = rows[c.matrix];
    args.n_begin = c.begin;
    args.n_end = c.end;
    kernels.gemm(args);
  });
}

void MatMul(const float* x, int64_t m, const TensorView& w, float* y, ThreadPool& pool) {
  const TensorView* ws[] = {&w};
  float* ys[] = {y};
  MatMulGroup(x, m, ws, ys, pool);
}

}  // namespace strata::kernels::cpu

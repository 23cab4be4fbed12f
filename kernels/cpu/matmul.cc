// MatMul: validates the views, quantizes activations for q8_0/q4_0 weights, and splits the
// output columns (weight rows) across the pool; the ISA table does the arithmetic
// (kernels_impl.h explains the tiling).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

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

// Runs fn(begin, end) over row chunks of [0, n) on every pool thread, handed out dynamically.
// (ThreadPool::ParallelFor makes about four chunks per thread: too coarse here.)
template <class Fn>
void ParallelRows(ThreadPool& pool, int64_t n, const Fn& fn) {
  const int64_t chunk =
      std::max(kMinRowsPerChunk, n / (pool.num_threads() * kChunksPerThread) / 16 * 16);
  if (pool.num_threads() == 1 || n <= chunk) {
    fn(0, n);
    return;
  }
  std::atomic<int64_t> next{0};
  pool.RunOnAll([&](int) {
    for (int64_t begin = next.fetch_add(chunk); begin < n; begin = next.fetch_add(chunk)) {
      fn(begin, std::min(n, begin + chunk));
    }
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

void MatMul(const float* x, int64_t m, const TensorView& w, float* y, ThreadPool& pool) {
  const int64_t n = w.Rows();
  const int64_t k = w.Cols();
  if (m <= 0 || n <= 0) return;
  const IsaKernels& kernels = ActiveKernels();
  if (w.dtype == DType::kQ8_0 || w.dtype == DType::kQ4_0) {
    STRATA_CHECK(k % kQ8_0BlockElems == 0) << "MatMul: k = " << k << " is not a multiple of 32";
    thread_local QuantizedX xq;
    const bool q4 = w.dtype == DType::kQ4_0;
    QuantizeActivations(kernels, x, m, k, q4, pool, xq);
    QGemmArgs args;
    args.xq = xq.blocks.data();
    args.xd = xq.scales.data();
    args.xcorr = q4 ? xq.corr.data() : nullptr;
    args.m = m;
    args.w = w.data;
    args.w_stride = w.row_stride_bytes;
    args.dtype = w.dtype;
    args.k_blocks = k / kQ8_0BlockElems;
    args.y = y;
    args.ldy = n;
    ParallelRows(pool, n, [&](int64_t begin, int64_t end) {
      QGemmArgs chunk = args;
      chunk.n_begin = begin;
      chunk.n_end = end;
      kernels.qgemm(chunk);
    });
    return;
  }
  STRATA_CHECK(w.dtype == DType::kF32 || w.dtype == DType::kF16 || w.dtype == DType::kBF16)
      << "MatMul: unsupported weight dtype " << DTypeName(w.dtype);
  GemmArgs args;
  args.x = x;
  args.ldx = k;
  args.m = m;
  args.w = w.data;
  args.w_stride = w.row_stride_bytes;
  args.dtype = w.dtype;
  args.k = k;
  args.y = y;
  args.ldy = n;
  ParallelRows(pool, n, [&](int64_t begin, int64_t end) {
    GemmArgs chunk = args;
    chunk.n_begin = begin;
    chunk.n_end = end;
    kernels.gemm(chunk);
  });
}

}  // namespace strata::kernels::cpu

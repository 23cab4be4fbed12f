// strata_attention_bench: our CUDA attention kernels on Llama-3-8B-shaped heads (32 query heads,
// 8 KV heads, head dim 128, bf16, paged cache with 16-token blocks in shuffled order).
//
//   prefill: causal, batch x seq tokens, TFLOP/s = 4 * d * heads * sum(visible keys) / time,
//            against --peak_tflops (dense bf16 of the device); the portable kernel, and on a
//            compute capability 9.0 device the Hopper kernel (PagedAttentionArgs::hopper) on
//            the same shapes, each line naming the registry's prefill kernel;
//   decode:  one query per sequence, GB/s = K/V bytes read (+ q, out) / time, against the
//            device-to-device copy bandwidth measured here first (bytes read + written).
// Times are medians of --iters launches after warm-up, with CUDA events; inputs are random
// (hashed), never zeros. Prints one line per case; the same shapes run through PyTorch's
// scaled_dot_product_attention in bench/cuda/sdpa_peer.py.
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench/cuda/bench_util.cuh"
#include "kernels/cuda/attention.h"

namespace strata::kernels::cuda {
namespace {

using bench::Buffer;
using bench::MedianMs;
using bench::Options;
using bench::Random;

// An fp8 cache: codes of values in [-1, 1) (as WriteKv stores them), and every row's scale.
__global__ void FillFp8(uint8_t* codes, int64_t n, float* scales, int64_t rows, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 16;
    h *= 0x7feb352du;
    const float x = static_cast<float>(h) * (2.0f / 4294967296.0f) - 1.0f;
    codes[i] = __nv_cvt_float_to_fp8(x * 448.0f, __NV_SATFINITE, __NV_E4M3);
    if (i < rows) scales[i] = 1.0f / 448.0f;
  }
}

constexpr int64_t kHeads = 32, kKvHeads = 8, kDim = 128, kBlock = 16;

// A paged batch of `num_seqs` sequences of `n_q` queries over `ctx` tokens each, random data.
struct PagedBatch {
  std::unique_ptr<Buffer> q, k, v, k_scale, v_scale, out, tables, starts, lens, workspace;
  PagedAttentionArgs args;

  PagedBatch(int64_t num_seqs, int32_t n_q, int32_t ctx, bool fp8 = false) {
    const int64_t blocks_per_seq = (ctx + kBlock - 1) / kBlock;
    const int64_t num_blocks = num_seqs * blocks_per_seq;
    std::vector<int32_t> table(num_blocks), start(num_seqs + 1), len(num_seqs, ctx);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), std::mt19937(7));
    for (int64_t s = 0; s <= num_seqs; ++s) start[s] = static_cast<int32_t>(s * n_q);
    const int64_t tokens = num_seqs * n_q;
    const int64_t cache = num_blocks * kBlock * kKvHeads * kDim;
    q = std::make_unique<Buffer>(tokens * kHeads * kDim * 2);
    out = std::make_unique<Buffer>(tokens * kHeads * kDim * 2);
    Random(q->ptr, tokens * kHeads * kDim, 2);
    if (fp8) {
      const int64_t rows = cache / kDim;
      k = std::make_unique<Buffer>(cache);
      v = std::make_unique<Buffer>(cache);
      k_scale = std::make_unique<Buffer>(rows * 4);
      v_scale = std::make_unique<Buffer>(rows * 4);
      FillFp8<<<1024, 256>>>(static_cast<uint8_t*>(k->ptr), cache, static_cast<float*>(k_scale->ptr), rows, 3);
      FillFp8<<<1024, 256>>>(static_cast<uint8_t*>(v->ptr), cache, static_cast<float*>(v_scale->ptr), rows, 4);
      BENCH_CHECK(cudaGetLastError());
      args.fp8_kv = true;
      args.k_scale = static_cast<const float*>(k_scale->ptr);
      args.v_scale = static_cast<const float*>(v_scale->ptr);
    } else {
      k = std::make_unique<Buffer>(cache * 2);
      v = std::make_unique<Buffer>(cache * 2);
      Random(k->ptr, cache, 3);
      Random(v->ptr, cache, 4);
    }
    tables = Upload(table);
    starts = Upload(start);
    lens = Upload(len);
    const int64_t ws = AttentionWorkspaceBytes(num_seqs, kHeads, kDim, ctx);
    workspace = std::make_unique<Buffer>(ws);
    args.q = q->ptr;
    args.k_cache = k->ptr;
    args.v_cache = v->ptr;
    args.out = out->ptr;
    args.block_tables = static_cast<const int32_t*>(tables->ptr);
    args.query_start = static_cast<const int32_t*>(starts->ptr);
    args.context_lens = static_cast<const int32_t*>(lens->ptr);
    args.num_seqs = num_seqs;
    args.max_blocks_per_seq = blocks_per_seq;
    args.num_heads = kHeads;
    args.num_kv_heads = kKvHeads;
    args.head_dim = kDim;
    args.block_size = kBlock;
    args.max_query_len = n_q;
    args.max_context_len = ctx;
    args.scale = 1.0f / std::sqrt(static_cast<float>(kDim));
    args.workspace = workspace->ptr;
    args.workspace_bytes = ws;
    args.num_blocks = num_blocks;
  }

  static std::unique_ptr<Buffer> Upload(const std::vector<int32_t>& host) {
    auto buffer = std::make_unique<Buffer>(host.size() * 4);
    BENCH_CHECK(cudaMemcpy(buffer->ptr, host.data(), host.size() * 4, cudaMemcpyHostToDevice));
    return buffer;
  }

  double Run(int iters) {
    return MedianMs(iters, [&] {
      const absl::Status status = LaunchPagedAttention(args, AttentionDType::kBf16, nullptr);
      if (!status.ok()) {
        std::fprintf(stderr, "attention: %s\n", std::string(status.message()).c_str());
        std::exit(1);
      }
    });
  }
};

void Prefill(const Options& opt, int64_t batch, int32_t seq, bool fp8 = false,
             bool hopper = false) {
  PagedBatch b(batch, seq, seq, fp8);
  b.args.hopper = hopper;
  AttentionDesc desc;
  desc.head_dim = kDim;
  desc.fp8_kv = fp8;
  desc.hopper = hopper;
  desc.sm = hopper ? ComputeCapability(0) : 0;
  desc.block_size = kBlock;
  const absl::StatusOr<const AttentionKernel*> kernel = FindAttentionKernel(desc);
  const double ms = b.Run(opt.iters);
  const double keys = static_cast<double>(batch) * seq * (seq + 1.0) / 2.0;
  const double tflops = 4.0 * kDim * kHeads * keys / (ms * 1e-3) / 1e12;
  std::printf("prefill d128 bf16%s causal batch=%ld seq=%d heads=32/8 [%s]: %.3f ms, %.1f "
              "TFLOP/s (%.1f %% of %.0f)\n",
              fp8 ? " fp8-kv" : "", static_cast<long>(batch), seq,
              kernel.ok() ? (*kernel)->name : "?", ms, tflops, 100.0 * tflops / opt.peak_tflops,
              opt.peak_tflops);
}

// Bytes read: K and V (a byte a value and a 4-byte scale per row for fp8, else 2 bytes a
// value), q; written: out.
void Decode(const Options& opt, double copy_gbs, int64_t batch, int32_t ctx, bool fp8 = false) {
  PagedBatch b(batch, 1, ctx, fp8);
  const double ms = b.Run(opt.iters);
  const double kv = fp8 ? 2.0 * ctx * kKvHeads * (kDim + 4) : 2.0 * ctx * kKvHeads * kDim * 2;
  const double bytes = batch * (kv + 2.0 * kHeads * kDim * 2);
  const double gbs = bytes / (ms * 1e-3) / 1e9;
  std::printf("decode  d128 bf16%s paged  batch=%ld ctx=%d heads=32/8: %.3f ms, %.0f GB/s "
              "(%.1f %% of the %.0f GB/s copy)\n",
              fp8 ? " fp8-kv" : "", static_cast<long>(batch), ctx, ms, gbs,
              100.0 * gbs / copy_gbs, copy_gbs);
}

}  // namespace
}  // namespace strata::kernels::cuda

int main(int argc, char** argv) {
  using namespace strata::kernels::cuda;
  strata::bench::Options opt;
  double copy = 0.0;
  if (const int code = strata::bench::Start(argc, argv, "strata_attention_bench", opt, copy); code != 0) {
    return code;
  }
  const bool hopper = ComputeCapability(0) == 90 && HopperPrefillBuilt();
  for (bool on_hopper : {false, true}) {
    if (on_hopper && !hopper) break;
    for (int32_t seq : {1024, 4096}) Prefill(opt, seq == 1024 ? 16 : 4, seq, false, on_hopper);
    Prefill(opt, 1, 16384, false, on_hopper);
  }
  for (int64_t batch : {1, 32, 128}) Decode(opt, copy, batch, 4096);
  for (int32_t ctx : {16384, 65536}) Decode(opt, copy, 1, ctx);
  Decode(opt, copy, 32, 16384);
  // An fp8 KV cache: half the bytes a token.
  Prefill(opt, 4, 4096, true);
  for (int64_t batch : {1, 32, 128}) Decode(opt, copy, batch, 4096, true);
  Decode(opt, copy, 1, 65536, true);
  return 0;
}

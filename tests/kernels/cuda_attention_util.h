// Host side of the CUDA attention tests and benchmark: a random paged batch (Q, K/V cache in
// shuffled blocks, block tables, query/context lengths) in 16-bit floats (or an fp8 e4m3 cache
// with a scale per row; or a latent cache whose V is the first v_head_dim values of each K
// row), its float64 reference, and a device copy with PagedAttentionArgs pointing into it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/attention.h"

namespace strata::kernels::cuda::testing {

struct SeqShape {
  int32_t n_q = 1;  // query tokens this step
  int32_t ctx = 1;  // context after this step (>= n_q)
};

struct AttentionShape {
  int64_t head_dim = 128;
  int64_t num_heads = 8;
  int64_t num_kv_heads = 2;
  int64_t block_size = 16;
  AttentionDType dtype = AttentionDType::kBf16;
  float softcap = 0.0f;
  int64_t sliding_window = 0;
  bool fp8_kv = false;  // the cache in fp8 e4m3, rows of random magnitudes with their scales
  int64_t v_head_dim = 0;  // of V and the output (0: head_dim)
  bool v_in_k = false;     // V not stored: the first v_head_dim values of each K row
  std::vector<SeqShape> seqs;

  int64_t v_dim() const { return v_head_dim > 0 ? v_head_dim : head_dim; }
};

inline uint16_t ToHalfBits(float x, AttentionDType dtype) {
  if (dtype == AttentionDType::kBf16) return __nv_bfloat16_raw(__float2bfloat16_rn(x)).x;
  return __half_raw(__float2half_rn(x)).x;
}
inline float FromHalfBits(uint16_t bits, AttentionDType dtype) {
  if (dtype == AttentionDType::kBf16) {
    __nv_bfloat16_raw raw;
    raw.x = bits;
    return __bfloat162float(__nv_bfloat16(raw));
  }
  __half_raw raw;
  raw.x = bits;
  return __half2float(__half(raw));
}

// A batch on the host: 16-bit tensors as bits, and the metadata.
struct HostBatch {
  AttentionShape shape;
  int64_t num_tokens = 0;
  int64_t num_blocks = 0;
  int64_t max_blocks_per_seq = 0;
  // q [tokens, heads, d]; k [blocks, block_size, kv, d]; v likewise with dv (empty if v_in_k)
  std::vector<uint16_t> q, k, v;
  std::vector<uint8_t> k8, v8;    // fp8_kv: the cache's codes (k and v are then empty)
  std::vector<float> k_scale, v_scale;  // fp8_kv: [blocks, block_size, kv]
  std::vector<int32_t> block_tables, query_start, context_lens;

  // Element i of the cache row `row` (a slot's KV head) of K, or of V, as the kernels read it.
  float Kv(bool is_v, int64_t row, int64_t i) const {
    const bool from_v = is_v && !shape.v_in_k;
    const int64_t row_dim = from_v ? shape.v_dim() : shape.head_dim;
    const int64_t at = row * row_dim + i;
    if (!shape.fp8_kv) return FromHalfBits((from_v ? v : k)[at], shape.dtype);
    const __half h(__nv_cvt_fp8_to_halfraw((from_v ? v8 : k8)[at], __NV_E4M3));
    return __half2float(h) * (from_v ? v_scale : k_scale)[row];
  }
};

// Rows of `d` values as fp8 codes the way LaunchWriteKv stores them: scale = amax / 448 (1 for
// a zero row), code = e4m3(x / scale), rounded to nearest even and saturated.
inline void QuantizeFp8Rows(const std::vector<float>& x, int64_t d, std::vector<uint8_t>& codes,
                            std::vector<float>& scales) {
  codes.resize(x.size());
  scales.resize(x.size() / d);
  for (size_t r = 0; r < scales.size(); ++r) {
    float amax = 0.0f;
    for (int64_t i = 0; i < d; ++i) amax = std::max(amax, std::fabs(x[r * d + i]));
    float scale = amax / 448.0f;
    if (!(scale > 0.0f)) scale = 1.0f;
    scales[r] = scale;
    for (int64_t i = 0; i < d; ++i) {
      codes[r * d + i] = __nv_cvt_float_to_fp8(x[r * d + i] / scale, __NV_SATFINITE, __NV_E4M3);
    }
  }
}

// Random Q (uniform in [-q_range, q_range]), K and V ([-1, 1]); every sequence's blocks are
// distinct physical blocks in a shuffled order (plus a few unused ones).
inline HostBatch MakeBatch(const AttentionShape& shape, uint32_t seed, float q_range = 3.0f) {
  HostBatch b;
  b.shape = shape;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  const int64_t d = shape.head_dim;
  b.query_start.push_back(0);
  int64_t blocks_needed = 0;
  for (const SeqShape& s : shape.seqs) {
    b.query_start.push_back(b.query_start.back() + s.n_q);
    b.context_lens.push_back(s.ctx);
    const int64_t blocks = (s.ctx + shape.block_size - 1) / shape.block_size;
    blocks_needed += blocks;
    b.max_blocks_per_seq = std::max(b.max_blocks_per_seq, blocks);
  }
  b.max_blocks_per_seq = std::max<int64_t>(b.max_blocks_per_seq, 1);
  b.num_tokens = b.query_start.back();
  b.num_blocks = blocks_needed + 3;
  std::vector<int32_t> physical(b.num_blocks);
  std::iota(physical.begin(), physical.end(), 0);
  std::shuffle(physical.begin(), physical.end(), rng);
  b.block_tables.assign(shape.seqs.size() * b.max_blocks_per_seq, -1);
  int64_t next = 0;
  for (size_t s = 0; s < shape.seqs.size(); ++s) {
    const int64_t blocks = (shape.seqs[s].ctx + shape.block_size - 1) / shape.block_size;
    for (int64_t i = 0; i < blocks; ++i) {
      b.block_tables[s * b.max_blocks_per_seq + i] = physical[next++];
    }
  }
  auto fill = [&](std::vector<uint16_t>& t, int64_t n, float range) {
    t.resize(n);
    for (uint16_t& x : t) x = ToHalfBits(range * unit(rng), shape.dtype);
  };
  fill(b.q, b.num_tokens * shape.num_heads * d, q_range);
  const int64_t rows = b.num_blocks * shape.block_size * shape.num_kv_heads;
  const int64_t dv = shape.v_dim();
  if (shape.fp8_kv) {  // rows of magnitudes 2^-4 .. 2^3 (each row its own scale), a zero row
    std::uniform_real_distribution<float> log2_magnitude(-4.0f, 3.0f);
    // The zero row: the first sequence's first key (written, so never poisoned below).
    const int64_t zero_row = int64_t{b.block_tables[0]} * shape.block_size * shape.num_kv_heads;
    auto quantize = [&](int64_t row_dim, std::vector<uint8_t>& codes, std::vector<float>& scales) {
      std::vector<float> x(rows * row_dim);
      for (int64_t r = 0; r < rows; ++r) {
        const float m = r == zero_row ? 0.0f : std::exp2(log2_magnitude(rng));
        for (int64_t i = 0; i < row_dim; ++i) x[r * row_dim + i] = m * unit(rng);
      }
      QuantizeFp8Rows(x, row_dim, codes, scales);
    };
    quantize(d, b.k8, b.k_scale);
    if (!shape.v_in_k) quantize(dv, b.v8, b.v_scale);
  } else {
    fill(b.k, rows * d, 1.0f);
    if (!shape.v_in_k) fill(b.v, rows * dv, 1.0f);
  }
  // Slots no sequence has written (past each context in its last block, and the unused blocks)
  // hold NaN codes: a kernel that lets one into a result, even times a zero weight, fails.
  std::vector<bool> written(b.num_blocks * shape.block_size, false);
  for (size_t s = 0; s < shape.seqs.size(); ++s) {
    for (int32_t t = 0; t < shape.seqs[s].ctx; ++t) {
      const int64_t block = b.block_tables[s * b.max_blocks_per_seq + t / shape.block_size];
      written[block * shape.block_size + t % shape.block_size] = true;
    }
  }
  auto poison = [&](auto& cache, int64_t row, int64_t row_dim, auto nan) {
    std::fill_n(cache.begin() + row * row_dim, shape.num_kv_heads * row_dim, nan);
  };
  for (size_t slot = 0; slot < written.size(); ++slot) {
    if (written[slot]) continue;
    const int64_t row = static_cast<int64_t>(slot) * shape.num_kv_heads;
    if (shape.fp8_kv) {  // 0x7F: NaN in e4m3
      poison(b.k8, row, d, uint8_t{0x7F});
      if (!shape.v_in_k) poison(b.v8, row, dv, uint8_t{0x7F});
    } else {  // 0xFFFF: NaN in bf16 and in fp16
      poison(b.k, row, d, uint16_t{0xFFFF});
      if (!shape.v_in_k) poison(b.v, row, dv, uint16_t{0xFFFF});
    }
  }
  return b;
}

// The float64 reference output [tokens, heads, dv] of the batch's (rounded) inputs.
inline std::vector<double> ReferenceAttention(const HostBatch& b) {
  const AttentionShape& sh = b.shape;
  const int64_t d = sh.head_dim, dv = sh.v_dim();
  const int64_t group = sh.num_heads / sh.num_kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> out(b.num_tokens * sh.num_heads * dv, 0.0);
  auto at = [&](const std::vector<uint16_t>& t, int64_t i) { return FromHalfBits(t[i], sh.dtype); };
  for (size_t s = 0; s < sh.seqs.size(); ++s) {
    const SeqShape seq = sh.seqs[s];
    const int32_t* table = b.block_tables.data() + s * b.max_blocks_per_seq;
    auto row = [&](int64_t key, int64_t kvh) {  // the cache row of a key position's KV head
      const int64_t slot = int64_t{table[key / sh.block_size]} * sh.block_size + key % sh.block_size;
      return slot * sh.num_kv_heads + kvh;
    };
    for (int32_t j = 0; j < seq.n_q; ++j) {
      const int64_t token = b.query_start[s] + j;
      const int64_t pos = seq.ctx - seq.n_q + j;
      const int64_t first = sh.sliding_window > 0 ? std::max<int64_t>(0, pos - sh.sliding_window + 1) : 0;
      for (int64_t h = 0; h < sh.num_heads; ++h) {
        const int64_t q0 = (token * sh.num_heads + h) * d;
        const int64_t o0 = (token * sh.num_heads + h) * dv;
        std::vector<double> p(pos + 1 - first);
        double top = -INFINITY;
        for (int64_t t = first; t <= pos; ++t) {
          double dot = 0.0;
          const int64_t r = row(t, h / group);
          for (int64_t i = 0; i < d; ++i) dot += double{at(b.q, q0 + i)} * b.Kv(false, r, i);
          dot *= scale;
          if (sh.softcap > 0.0f) dot = sh.softcap * std::tanh(dot / sh.softcap);
          p[t - first] = dot;
          top = std::max(top, dot);
        }
        double sum = 0.0;
        for (double& x : p) sum += (x = std::exp(x - top));
        for (int64_t t = first; t <= pos; ++t) {
          const double w = p[t - first] / sum;
          const int64_t r = row(t, h / group);
          for (int64_t i = 0; i < dv; ++i) out[o0 + i] += w * b.Kv(true, r, i);
        }
      }
    }
  }
  return out;
}

// A device allocation freed on destruction.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  explicit DeviceMemory(size_t bytes) : bytes_(bytes) {
    if (bytes > 0 && cudaMalloc(&ptr_, bytes) != cudaSuccess) ptr_ = nullptr;
  }
  template <class T>
  explicit DeviceMemory(const std::vector<T>& host) : DeviceMemory(host.size() * sizeof(T)) {
    if (ptr_ != nullptr) cudaMemcpy(ptr_, host.data(), bytes_, cudaMemcpyHostToDevice);
  }
  ~DeviceMemory() { cudaFree(ptr_); }
  DeviceMemory(DeviceMemory&& other) noexcept : ptr_(other.ptr_), bytes_(other.bytes_) {
    other.ptr_ = nullptr;
  }
  DeviceMemory& operator=(DeviceMemory&& other) noexcept {
    std::swap(ptr_, other.ptr_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// The batch on the device, the output poisoned with NaN (0xFFFF) so an unwritten element shows.
struct DeviceBatch {
  DeviceMemory q, k, v, k_scale, v_scale, out, block_tables, query_start, context_lens, workspace;
  PagedAttentionArgs args;

  explicit DeviceBatch(const HostBatch& b)
      : q(b.q), k(b.shape.fp8_kv ? DeviceMemory(b.k8) : DeviceMemory(b.k)),
        v(b.shape.fp8_kv ? DeviceMemory(b.v8) : DeviceMemory(b.v)), k_scale(b.k_scale),
        v_scale(b.v_scale),
        out(static_cast<size_t>(b.num_tokens * b.shape.num_heads * b.shape.v_dim()) * 2),
        block_tables(b.block_tables),
        query_start(b.query_start), context_lens(b.context_lens) {
    const AttentionShape& sh = b.shape;
    int64_t max_q = 0, max_ctx = 0;
    for (const SeqShape& s : sh.seqs) {
      max_q = std::max<int64_t>(max_q, s.n_q);
      max_ctx = std::max<int64_t>(max_ctx, s.ctx);
    }
    workspace = DeviceMemory(static_cast<size_t>(AttentionWorkspaceBytes(
        static_cast<int64_t>(sh.seqs.size()), sh.num_heads, sh.head_dim, max_ctx)));
    cudaMemset(out.get(), 0xFF, out.bytes());
    args.q = q.get();
    args.k_cache = k.get();
    args.v_cache = v.get();  // null for a latent cache: the kernels must not read it
    args.fp8_kv = sh.fp8_kv;
    args.k_scale = static_cast<const float*>(k_scale.get());
    args.v_scale = static_cast<const float*>(v_scale.get());
    args.out = out.get();
    args.block_tables = static_cast<const int32_t*>(block_tables.get());
    args.query_start = static_cast<const int32_t*>(query_start.get());
    args.context_lens = static_cast<const int32_t*>(context_lens.get());
    args.num_seqs = static_cast<int64_t>(sh.seqs.size());
    args.max_blocks_per_seq = b.max_blocks_per_seq;
    args.num_heads = sh.num_heads;
    args.num_kv_heads = sh.num_kv_heads;
    args.head_dim = sh.head_dim;
    args.v_head_dim = sh.v_head_dim;
    args.v_in_k = sh.v_in_k;
    args.block_size = sh.block_size;
    args.max_query_len = max_q;
    args.max_context_len = max_ctx;
    args.max_tokens = b.num_tokens;
    args.scale = 1.0f / std::sqrt(static_cast<float>(sh.head_dim));
    args.softcap = sh.softcap;
    args.sliding_window = sh.sliding_window;
    args.workspace = workspace.get();
    args.workspace_bytes = static_cast<int64_t>(workspace.bytes());
    args.num_blocks = b.num_blocks;
  }

  std::vector<uint16_t> Output() const {
    std::vector<uint16_t> host(out.bytes() / 2);
    cudaMemcpy(host.data(), out.get(), out.bytes(), cudaMemcpyDeviceToHost);
    return host;
  }
};

}  // namespace strata::kernels::cuda::testing

// Row movement: the embedding lookup (one block per token), gathering rows by index (one block
// per row), and KV cache writes (one thread per value, scattered by slot; one warp per (token,
// KV head) row for an fp8 cache, whose scale is the row's largest magnitude over 448).
#include <cuda_fp8.h>

#include "kernels/cuda/elem.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace strata::kernels::cuda {
namespace {

template <class T>
__global__ void EmbeddingKernel(const EmbeddingParams p) {
  const int64_t token = blockIdx.x;
  const int64_t id = p.tokens[token] - p.vocab_begin;
  T* out = static_cast<T*>(p.out) + token * p.dim;
  const bool inside = id >= 0 && id < p.table_rows;
  const __nv_bfloat16* row = static_cast<const __nv_bfloat16*>(p.table) + (inside ? id : 0) * p.dim;
  for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) {
    StoreF(out + i, inside ? __bfloat162float(row[i]) * p.scale : 0.0f);
  }
}

__global__ void GatherRowsKernel(const GatherRowsParams p) {
  const int64_t units = p.row_bytes / 2;
  const auto* src = static_cast<const uint16_t*>(p.src) + int64_t{p.rows[blockIdx.x]} * units;
  auto* dst = static_cast<uint16_t*>(p.dst) + int64_t{blockIdx.x} * units;
  for (int64_t i = threadIdx.x; i < units; i += blockDim.x) dst[i] = src[i];
}

template <class T>
__global__ void WriteKvKernel(const WriteKvParams p) {
  const int64_t k_row = p.num_kv_heads * p.head_dim;
  const int64_t v_row = p.num_kv_heads * p.v_head_dim;
  const int64_t per_token = k_row + (p.v_cache != nullptr ? v_row : 0);
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < p.num_tokens * per_token;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t token = idx / per_token, i = idx % per_token;
    const int64_t slot = p.slot_mapping[token];
    if (slot < 0) continue;  // padding
    if (i < k_row) {
      StoreF(static_cast<__nv_bfloat16*>(p.k_cache) + slot * k_row + i,
             LoadF(static_cast<const T*>(p.k) + token * k_row + i));
    } else {
      StoreF(static_cast<__nv_bfloat16*>(p.v_cache) + slot * v_row + (i - k_row),
             LoadF(static_cast<const T*>(p.v) + token * v_row + (i - k_row)));
    }
  }
}

template <class T>
__global__ void WriteKvFp8Kernel(const WriteKvParams p) {
  const int64_t warp = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  const int64_t heads = p.num_kv_heads;
  const int64_t rows_per_token = heads * (p.v_cache != nullptr ? 2 : 1);
  if (warp >= p.num_tokens * rows_per_token) return;
  const int64_t token = warp / rows_per_token, r = warp % rows_per_token;
  const bool is_v = r >= heads;
  const int64_t head = r % heads, dim = is_v ? p.v_head_dim : p.head_dim;
  const T* src = static_cast<const T*>(is_v ? p.v : p.k) + (token * heads + head) * dim;
  if (p.slot_mapping[token] < 0) return;  // padding
  const int64_t row = p.slot_mapping[token] * heads + head;
  auto* dst = static_cast<__nv_fp8_storage_t*>(is_v ? p.v_cache : p.k_cache) + row * dim;
  float amax = 0.0f;
  for (int64_t i = lane; i < dim; i += 32) amax = fmaxf(amax, fabsf(LoadF(src + i)));
  for (int offset = 16; offset > 0; offset >>= 1) {
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
  }
  float scale = __fdiv_rn(amax, 448.0f);
  if (!(scale > 0.0f)) scale = 1.0f;  // a row of zeros (or one too small to scale)
  for (int64_t i = lane; i < dim; i += 32) {
    dst[i] = __nv_cvt_float_to_fp8(__fdiv_rn(LoadF(src + i), scale), __NV_SATFINITE, __NV_E4M3);
  }
  if (lane == 0) (is_v ? p.v_scale : p.k_scale)[row] = scale;
}

}  // namespace

absl::Status LaunchEmbedding(const EmbeddingParams& params, void* stream) {
  if (params.tokens == nullptr || params.table == nullptr || params.out == nullptr ||
      params.num_tokens < 0 || params.num_tokens > 0x7fffffff || params.dim <= 0) {
    return absl::InvalidArgumentError("LaunchEmbedding: null pointer or bad shape");
  }
  if (params.num_tokens == 0) return absl::OkStatus();
  return DispatchElem(params.elem, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    EmbeddingKernel<T><<<static_cast<unsigned>(params.num_tokens), 256, 0, AsStream(stream)>>>(
        params);
    return LaunchStatus("EmbeddingKernel");
  });
}

absl::Status LaunchGatherRows(const GatherRowsParams& params, void* stream) {
  if (params.src == nullptr || params.dst == nullptr || params.rows == nullptr ||
      params.num_rows < 0 || params.num_rows > 0x7fffffff || params.row_bytes % 2 != 0) {
    return absl::InvalidArgumentError("LaunchGatherRows: null pointer or bad shape");
  }
  if (params.num_rows == 0 || params.row_bytes == 0) return absl::OkStatus();
  GatherRowsKernel<<<static_cast<unsigned>(params.num_rows), 256, 0, AsStream(stream)>>>(params);
  return LaunchStatus("GatherRowsKernel");
}

absl::Status LaunchWriteKv(const WriteKvParams& params, void* stream) {
  if (params.k == nullptr || params.k_cache == nullptr || params.slot_mapping == nullptr ||
      (params.v_cache != nullptr && params.v == nullptr) || params.num_tokens < 0 ||
      params.num_kv_heads <= 0 || params.head_dim <= 0 ||
      (params.v_cache != nullptr && params.v_head_dim <= 0)) {
    return absl::InvalidArgumentError("LaunchWriteKv: null pointer or bad shape");
  }
  if (params.fp8 && (params.k_scale == nullptr || (params.v_cache != nullptr && params.v_scale == nullptr))) {
    return absl::InvalidArgumentError("LaunchWriteKv: an fp8 cache needs its scales");
  }
  const int64_t per_token = params.num_kv_heads * (params.head_dim +
                            (params.v_cache != nullptr ? params.v_head_dim : 0));
  if (params.num_tokens == 0) return absl::OkStatus();
  return DispatchElem(params.elem, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if (params.fp8) {
      const int64_t rows = params.num_tokens * params.num_kv_heads * (params.v_cache != nullptr ? 2 : 1);
      WriteKvFp8Kernel<T><<<static_cast<unsigned>((rows + 7) / 8), 256, 0, AsStream(stream)>>>(params);
      return LaunchStatus("WriteKvFp8Kernel");
    }
    WriteKvKernel<T><<<GridFor(params.num_tokens * per_token), 256, 0, AsStream(stream)>>>(params);
    return LaunchStatus("WriteKvKernel");
  });
}

}  // namespace strata::kernels::cuda

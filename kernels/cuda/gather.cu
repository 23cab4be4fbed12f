// Row movement: the embedding lookup (one block per token), gathering rows by index (one block
// per row), and KV cache writes (one thread per value, scattered by slot).
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
    if (i < k_row) {
      StoreF(static_cast<__nv_bfloat16*>(p.k_cache) + slot * k_row + i,
             LoadF(static_cast<const T*>(p.k) + token * k_row + i));
    } else {
      StoreF(static_cast<__nv_bfloat16*>(p.v_cache) + slot * v_row + (i - k_row),
             LoadF(static_cast<const T*>(p.v) + token * v_row + (i - k_row)));
    }
  }
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
  const int64_t per_token = params.num_kv_heads * (params.head_dim +
                            (params.v_cache != nullptr ? params.v_head_dim : 0));
  if (params.num_tokens == 0) return absl::OkStatus();
  return DispatchElem(params.elem, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    WriteKvKernel<T><<<GridFor(params.num_tokens * per_token), 256, 0, AsStream(stream)>>>(params);
    return LaunchStatus("WriteKvKernel");
  });
}

}  // namespace strata::kernels::cuda

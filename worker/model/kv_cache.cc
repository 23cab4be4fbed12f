#include "worker/model/kv_cache.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace strata {

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::Create(Backend& backend, int64_t num_blocks,
                                                         int64_t block_size,
                                                         const std::vector<KvSpec>& layers) {
  if (num_blocks <= 0 || block_size <= 0 || layers.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("KV cache: ", num_blocks, " blocks of ",
                                                   block_size, " tokens for ", layers.size(),
                                                   " layers; all must be positive"));
  }
  auto cache = std::unique_ptr<KvCache>(new KvCache());
  cache->num_blocks_ = num_blocks;
  cache->block_size_ = block_size;
  const DType dtype = backend.device().kv_dtype;
  for (const KvSpec& spec : layers) {
    if (spec.num_kv_heads <= 0 || spec.head_dim <= 0 || spec.v_head_dim <= 0 ||
        (!spec.store_v && spec.v_head_dim > spec.head_dim)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "KV cache: a layer has ", spec.num_kv_heads, " KV heads of ", spec.head_dim, " / ",
          spec.v_head_dim, " values"));
    }
    KvLayer layer;
    layer.num_blocks = num_blocks;
    layer.block_size = block_size;
    layer.num_kv_heads = spec.num_kv_heads;
    layer.head_dim = spec.head_dim;
    layer.v_head_dim = spec.v_head_dim;
    auto allocate = [&](DType type, Shape shape) -> absl::StatusOr<Tensor> {
      STRATA_ASSIGN_OR_RETURN(Buffer b, backend.Allocate(type, std::move(shape)));
      cache->bytes_ += b.tensor.Bytes();
      cache->buffers_.push_back(b);
      return b.tensor;
    };
    const bool scaled = dtype == DType::kF8E4M3;  // a scale per (slot, KV head) row
    STRATA_ASSIGN_OR_RETURN(layer.k, allocate(dtype, {num_blocks, block_size, spec.num_kv_heads,
                                                      spec.head_dim}));
    if (scaled) {
      STRATA_ASSIGN_OR_RETURN(layer.k_scale, allocate(DType::kF32, {num_blocks, block_size,
                                                                    spec.num_kv_heads}));
    }
    if (spec.store_v) {
      STRATA_ASSIGN_OR_RETURN(layer.v, allocate(dtype, {num_blocks, block_size, spec.num_kv_heads,
                                                        spec.v_head_dim}));
      if (scaled) {
        STRATA_ASSIGN_OR_RETURN(layer.v_scale, allocate(DType::kF32, {num_blocks, block_size,
                                                                      spec.num_kv_heads}));
      }
    }
    cache->layers_.push_back(layer);
  }
  return cache;
}

}  // namespace strata

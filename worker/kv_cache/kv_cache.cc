#include "worker/kv_cache/kv_cache.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace strata {

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::Create(Backend& backend,
                                                         const KvCacheShape& shape) {
  if (shape.num_layers <= 0 || shape.num_blocks <= 0 || shape.block_size <= 0 ||
      shape.num_kv_heads <= 0 || shape.head_dim <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV cache shape must be positive: layers ", shape.num_layers, ", blocks ",
        shape.num_blocks, ", block size ", shape.block_size, ", kv heads ", shape.num_kv_heads,
        ", head dim ", shape.head_dim));
  }
  auto cache = std::unique_ptr<KvCache>(new KvCache());
  cache->shape_ = shape;
  const int64_t per_layer = shape.num_blocks * shape.block_size * shape.num_kv_heads * shape.head_dim;
  for (int64_t l = 0; l < shape.num_layers; ++l) {
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Buffer> k, backend.Allocate(per_layer));
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Buffer> v, backend.Allocate(per_layer));
    kernels::cpu::PagedKv layer;
    layer.k = k->data();
    layer.v = v->data();
    layer.num_blocks = shape.num_blocks;
    layer.block_size = shape.block_size;
    layer.num_kv_heads = shape.num_kv_heads;
    layer.head_dim = shape.head_dim;
    cache->layers_.push_back(layer);
    cache->buffers_.push_back(std::move(k));
    cache->buffers_.push_back(std::move(v));
  }
  return cache;
}

}  // namespace strata

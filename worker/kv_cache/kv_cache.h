// KvCache: the paged K/V storage of the layers a worker runs. Which sequence owns which block
// is decided by the coordinator; a worker only stores blocks and reads them through the block
// tables that arrive with each step.
//
// Per layer, K and V are [num_blocks, block_size, num_kv_heads, head_dim] f32 (the same layout
// on CPU and GPU, so the CPU reference and device kernels stay comparable).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cpu/ops.h"
#include "worker/backend/backend.h"

namespace strata {

struct KvCacheShape {
  int64_t num_layers = 0;  // layers held by this worker
  int64_t num_blocks = 0;
  int64_t block_size = 16;
  int64_t num_kv_heads = 0;  // KV heads held by this worker
  int64_t head_dim = 0;

  // Bytes of one block across all layers (K and V).
  int64_t BytesPerBlock() const { return 2 * num_layers * block_size * num_kv_heads * head_dim * 4; }
};

class KvCache {
 public:
  static absl::StatusOr<std::unique_ptr<KvCache>> Create(Backend& backend, const KvCacheShape& shape);

  const KvCacheShape& shape() const { return shape_; }
  // The view of local layer `layer` (0-based within this worker's range).
  const kernels::cpu::PagedKv& Layer(int64_t layer) const { return layers_[layer]; }

 private:
  KvCacheShape shape_;
  std::vector<std::unique_ptr<Buffer>> buffers_;
  std::vector<kernels::cpu::PagedKv> layers_;
};

}  // namespace strata

// KvCache: the paged K/V storage of the layers a runner holds. Which sequence owns which block
// is decided by the coordinator; a worker only stores blocks and reads them through the block
// tables of each step (the StepPlan).
//
// Per layer, K is [num_blocks, block_size, num_kv_heads, head_dim] and V
// [num_blocks, block_size, num_kv_heads, v_head_dim], in the backend's KV dtype (the same layout
// on every backend, so the CPU reference and device kernels stay comparable). What a token
// needs per layer is the layer's KvSpec: GQA heads, or one latent "head" whose V is part of
// its K (multi-head latent attention).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/backend/backend.h"

namespace strata {

// One layer's cache shape per token, on this rank.
struct KvSpec {
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;    // of K
  int64_t v_head_dim = 0;  // of V
  bool store_v = true;     // false: V is the first v_head_dim values of each K row

  int64_t ElementsPerToken() const {
    return num_kv_heads * (head_dim + (store_v ? v_head_dim : 0));
  }
  int64_t RowsPerToken() const { return num_kv_heads * (store_v ? 2 : 1); }  // (K or V, head)
};

// Bytes one token takes in one layer's cache of `dtype` holding `elements` values in `rows`
// (K or V, head) rows: the values, and an f8_e4m3 cache's f32 scale per row.
inline int64_t KvBytesPerToken(int64_t elements, int64_t rows, DType dtype) {
  return ElementsToBytes(dtype, elements) + (dtype == DType::kF8E4M3 ? rows * 4 : 0);
}

class KvCache {
 public:
  // One entry of `layers` per layer held, in order.
  static absl::StatusOr<std::unique_ptr<KvCache>> Create(Backend& backend, int64_t num_blocks,
                                                         int64_t block_size,
                                                         const std::vector<KvSpec>& layers);

  int64_t num_blocks() const { return num_blocks_; }
  int64_t block_size() const { return block_size_; }
  // The view of local layer `layer` (0-based within the runner's range).
  const KvLayer& Layer(int64_t layer) const { return layers_[layer]; }
  int64_t bytes() const { return bytes_; }

 private:
  int64_t num_blocks_ = 0;
  int64_t block_size_ = 0;
  int64_t bytes_ = 0;
  std::vector<Buffer> buffers_;
  std::vector<KvLayer> layers_;
};

}  // namespace strata

// SafetensorsWriter: writes tensors (+ optional "__metadata__") as one .safetensors file, or
// as a sharded Hugging Face model (model-0000K-of-0000N.safetensors + index.json).
//
//   SafetensorsWriter w;
//   STRATA_RETURN_IF_ERROR(w.AddTensor("lm_head.weight", DType::kBF16, {32000, 4096}, ptr));
//   STRATA_RETURN_IF_ERROR(w.Write("model.safetensors"));
//
// Data is laid out as the reference writer does: tensors ordered by decreasing element size
// (stable, so otherwise in insertion order), contiguous with no holes, and the JSON header
// padded with spaces to a multiple of 8, so every tensor is aligned to its element size.
// Tensor bytes are read only during Write (borrowed pointers must stay valid until then).
// Supported dtypes: F32, F16, BF16, I32, I8. Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/formats/tensor_payload.h"

namespace strata {

class SafetensorsWriter {
 public:
  // A "__metadata__" entry (e.g. {"format": "pt"}).
  void SetMetadata(std::string key, std::string value);

  // Tensors; `shape` is outermost-first, dims >= 0 (scalars have shape {}). AddTensor borrows
  // `data` until Write returns.
  absl::Status AddTensor(std::string name, DType dtype, Shape shape, const void* data);
  absl::Status AddTensorOwned(std::string name, DType dtype, Shape shape,
                              std::vector<std::byte> data);
  absl::Status AddTensorProducer(std::string name, DType dtype, Shape shape,
                                 TensorProducer produce);

  // Writes one file (through a temporary name, renamed into place on success).
  absl::Status Write(const std::string& path) const;

  // Writes `dir`/model-0000K-of-0000N.safetensors and `dir`/model.safetensors.index.json
  // (weight_map and metadata.total_size). Tensors fill shards in data order; a shard is closed
  // when the next tensor would take it past `max_shard_bytes` of data (a larger tensor gets a
  // shard of its own). `dir` must exist.
  absl::Status WriteSharded(const std::string& dir, int64_t max_shard_bytes) const;

 private:
  // Tensors in data order (see the file comment).
  std::vector<const PendingTensor*> DataOrder() const;
  absl::Status WriteFile(const std::string& path,
                         const std::vector<const PendingTensor*>& tensors) const;

  std::map<std::string, std::string> metadata_;
  PendingTensorList tensors_;
};

}  // namespace strata

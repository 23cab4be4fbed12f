// Safetensors readers: one `.safetensors` file, or a sharded model described by
// `model.safetensors.index.json`.
//
// File layout: u64 little-endian header length N, N bytes of JSON
//   { "__metadata__": {str: str}?, "<name>": {"dtype": "F32", "shape": [..],
//     "data_offsets": [begin, end]}, ... }
// then the data buffer; offsets are relative to its start (byte 8 + N). Shapes are
// outermost-first. Data is not guaranteed to be aligned beyond what the writer chose (the
// reference writer keeps every tensor aligned to its element size).
//
// Everything is validated at Open: header length within the file, JSON well-formed, dtype known
// (F32, F16, BF16, I32, I8), shape dims >= 0 without overflow, data range inside the buffer and
// exactly shape x dtype bytes long, and ranges of different tensors disjoint. Views then point
// into the mmap'ed file and stay valid while the object lives. Thread-compatible: const methods
// may be called concurrently.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/formats/weight_source.h"
#include "common/mapped_file.h"

namespace strata {

// The JSON header may not exceed this (as in the reference implementation).
inline constexpr int64_t kSafetensorsMaxHeaderBytes = int64_t{100} << 20;

class SafetensorsFile : public WeightSource {
 public:
  // Maps and validates `path`; errors name the file and the tensor or field at fault.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  // The optional "__metadata__" string map (empty when absent).
  const std::map<std::string, std::string, std::less<>>& metadata() const { return metadata_; }

  // WeightSource.
  const std::string& path() const override { return file_->path(); }
  std::vector<std::string> TensorNames() const override;
  bool Has(std::string_view name) const override;
  absl::StatusOr<TensorView> Get(std::string_view name) const override;
  void Prefetch(const TensorView& view) const override { PrefetchView(*file_, view); }

 private:
  SafetensorsFile() = default;
  absl::Status Parse();

  std::unique_ptr<MappedFile> file_;
  std::map<std::string, std::string, std::less<>> metadata_;
  std::map<std::string, TensorView, std::less<>> tensors_;
};

// A model split over several safetensors files. The index's "weight_map" maps each tensor to
// a shard file name in the index's folder; each shard is opened once and every mapped tensor
// must exist in its shard. Tensors present in a shard but absent from the map are not visible.
class ShardedSafetensors : public WeightSource {
 public:
  // `index_path` is the model.safetensors.index.json file.
  static absl::StatusOr<std::unique_ptr<ShardedSafetensors>> Open(const std::string& index_path);

  // Shards in first-mention order of the weight map.
  const std::vector<std::unique_ptr<SafetensorsFile>>& shards() const { return shards_; }

  // WeightSource; path() is the index file.
  const std::string& path() const override { return path_; }
  std::vector<std::string> TensorNames() const override;
  bool Has(std::string_view name) const override;
  absl::StatusOr<TensorView> Get(std::string_view name) const override;
  // Each shard ignores views outside its file.
  void Prefetch(const TensorView& view) const override {
    for (const auto& shard : shards_) shard->Prefetch(view);
  }

 private:
  ShardedSafetensors() = default;

  std::string path_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, const SafetensorsFile*, std::less<>> tensor_shard_;
};

// "F32" <-> DType::kF32 etc. for F32, F16, BF16, I32, I8; others give InvalidArgument.
absl::StatusOr<DType> DTypeFromSafetensors(std::string_view name);
absl::StatusOr<std::string_view> SafetensorsDTypeName(DType dtype);

}  // namespace strata

// WeightSource: the tensors of a model, whatever file format holds them. Implementations map
// their files and hand out zero-copy views; a view stays valid as long as its source lives.
// The mappings read nothing ahead (mapped_file.h), so a loader that wants its bytes early asks
// for exactly them with Prefetch: a tensor-parallel rank then brings only its shard into memory.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/mapped_file.h"
#include "common/tensor.h"

namespace strata {

class WeightSource {
 public:
  virtual ~WeightSource() = default;

  // The file or directory the tensors come from (used in error messages).
  virtual const std::string& path() const = 0;
  // Every tensor name, sorted.
  virtual std::vector<std::string> TensorNames() const = 0;
  virtual bool Has(std::string_view name) const = 0;
  // The tensor, or NotFound naming the tensor and `path()`.
  virtual absl::StatusOr<TensorView> Get(std::string_view name) const = 0;

  // Starts reading the bytes of `view` (one from Get, or a slice of one) into memory, and no
  // others: for a column slice, only each row's segment. Returns at once; best effort. The
  // default does nothing (sources whose bytes are already in memory).
  virtual void Prefetch(const TensorView& /*view*/) const {}
};

// For implementations: prefetches `view`'s bytes from `file` (MappedFile::WillNeed), one range
// when the gaps between its rows are shorter than a page (no page would be skipped), else row
// by row. Does nothing when the view does not start inside `file`.
void PrefetchView(const MappedFile& file, const TensorView& view);

// Opens a model's weights: a `.gguf` file, a `.safetensors` file, or a directory with
// `model.safetensors` or `model.safetensors.index.json` (sharded).
absl::StatusOr<std::unique_ptr<WeightSource>> OpenWeightSource(const std::string& path);

}  // namespace strata

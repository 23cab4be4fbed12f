// WeightSource: the tensors of a model, whatever file format holds them. Implementations map
// their files and hand out zero-copy views; a view stays valid as long as its source lives.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
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
};

// Opens a model's weights: a `.gguf` file, a `.safetensors` file, or a directory with
// `model.safetensors` or `model.safetensors.index.json` (sharded).
absl::StatusOr<std::unique_ptr<WeightSource>> OpenWeightSource(const std::string& path);

}  // namespace strata

// GGUF reader (versions 2 and 3): metadata key/values, tensor infos and tensor data, validated
// once at open so that every later access is in bounds.
//
// File layout: magic "GGUF", u32 version, u64 tensor_count, u64 kv_count, kv_count key/values,
// tensor_count tensor infos (name, n_dims, ne[n_dims] innermost first, ggml type, u64 offset),
// padding to `general.alignment` (default 32), then the data section; offsets are relative to
// it and aligned. Shapes are reported outermost-first (ne reversed), like safetensors.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "common/formats/weight_source.h"
#include "common/mapped_file.h"

namespace strata {

// GGML type ids that Strata reads (others are rejected by name).
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ8_0 = 8,
  kBF16 = 30,
};

// One metadata value. Arrays hold a homogeneous list of scalars or strings.
struct GgufValue {
  using Array = std::variant<std::vector<int64_t>, std::vector<double>, std::vector<bool>,
                             std::vector<std::string>>;
  // Integers of any width are widened to int64 (u64 above INT64_MAX is rejected), floats to
  // double.
  std::variant<int64_t, double, bool, std::string, Array> value;
  // The GGUF type id as stored (0..12), for writers that must round-trip it.
  uint32_t type = 0;
  uint32_t array_type = 0;  // element type for arrays
};

class GgufFile : public WeightSource {
 public:
  // Maps and validates `path`. Errors name the file and the key or tensor at fault.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);

  uint32_t version() const { return version_; }
  int64_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return metadata_; }

  // Typed metadata look-ups. Missing key -> std::nullopt; wrong type -> InvalidArgument naming
  // the key and the expected type.
  absl::StatusOr<std::optional<int64_t>> GetInt(std::string_view key) const;
  absl::StatusOr<std::optional<double>> GetFloat(std::string_view key) const;  // ints too
  absl::StatusOr<std::optional<bool>> GetBool(std::string_view key) const;
  absl::StatusOr<std::optional<std::string>> GetString(std::string_view key) const;
  absl::StatusOr<std::optional<std::vector<std::string>>> GetStringArray(std::string_view key) const;
  absl::StatusOr<std::optional<std::vector<double>>> GetFloatArray(std::string_view key) const;
  absl::StatusOr<std::optional<std::vector<int64_t>>> GetIntArray(std::string_view key) const;

  // WeightSource.
  const std::string& path() const override { return file_->path(); }
  std::vector<std::string> TensorNames() const override;
  bool Has(std::string_view name) const override;
  absl::StatusOr<TensorView> Get(std::string_view name) const override;
  void Prefetch(const TensorView& view) const override { PrefetchView(*file_, view); }

 private:
  GgufFile() = default;
  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  int64_t alignment_ = 32;
  std::map<std::string, GgufValue, std::less<>> metadata_;
  std::map<std::string, TensorView, std::less<>> tensors_;
  friend class GgufParser;
};

// Maps GGML types to DType and back; unknown ids give InvalidArgument naming the id.
absl::StatusOr<DType> DTypeFromGgml(uint32_t ggml_type);
absl::StatusOr<GgmlType> GgmlFromDType(DType dtype);

}  // namespace strata

// GgufFile's typed metadata accessors, its WeightSource side, and the GGML type tables.
#include <array>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/formats/gguf.h"
#include "common/formats/gguf_constants.h"

namespace strata {
namespace {


struct GgufTypeEntry {
  std::string_view name;
  int size;  // 0 for string and array
};

constexpr std::array<GgufTypeEntry, 13> kGgufTypes = {{
    {"uint8", 1},
    {"int8", 1},
    {"uint16", 2},
    {"int16", 2},
    {"uint32", 4},
    {"int32", 4},
    {"float32", 4},
    {"bool", 1},
    {"string", 0},
    {"array", 0},
    {"uint64", 8},
    {"int64", 8},
    {"float64", 8},
}};

absl::Status WrongType(const std::string& path, std::string_view key, std::string_view expected,
                       const GgufValue& v) {
  std::string actual(GgufValueTypeName(v.type));
  if (v.type == static_cast<uint32_t>(GgufValueType::kArray)) {
    actual = absl::StrCat("array of ", Sv(GgufValueTypeName(v.array_type)));
  }
  return absl::InvalidArgumentError(absl::StrCat(path, ": metadata key '", Sv(key), "': expected ",
                                                 Sv(expected), ", found ", actual));
}

// Looks up `key` and extracts alternative T of the value, or of its array when T is a vector.
template <typename T>
absl::StatusOr<std::optional<T>> GetAs(const GgufFile& file, std::string_view key,
                                       std::string_view expected) {
  const auto it = file.metadata().find(key);
  if (it == file.metadata().end()) return std::optional<T>();
  const GgufValue& v = it->second;
  if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<double>> ||
                std::is_same_v<T, std::vector<std::string>>) {
    if (const auto* array = std::get_if<GgufValue::Array>(&v.value)) {
      if (const auto* typed = std::get_if<T>(array)) return std::optional<T>(*typed);
    }
  } else {
    if (const auto* typed = std::get_if<T>(&v.value)) return std::optional<T>(*typed);
  }
  return WrongType(file.path(), key, expected, v);
}

}  // namespace

std::string_view GgufValueTypeName(uint32_t type) {
  if (type < kGgufTypes.size()) return kGgufTypes[type].name;
  return "unknown type";
}

int GgufScalarSize(uint32_t type) { return type < kGgufTypes.size() ? kGgufTypes[type].size : 0; }

absl::StatusOr<std::optional<int64_t>> GgufFile::GetInt(std::string_view key) const {
  return GetAs<int64_t>(*this, key, "an integer");
}

absl::StatusOr<std::optional<double>> GgufFile::GetFloat(std::string_view key) const {
  const auto it = metadata_.find(key);
  if (it != metadata_.end()) {
    if (const auto* i = std::get_if<int64_t>(&it->second.value)) {
      return std::optional<double>(static_cast<double>(*i));
    }
  }
  return GetAs<double>(*this, key, "a number");
}

absl::StatusOr<std::optional<bool>> GgufFile::GetBool(std::string_view key) const {
  return GetAs<bool>(*this, key, "a bool");
}

absl::StatusOr<std::optional<std::string>> GgufFile::GetString(std::string_view key) const {
  return GetAs<std::string>(*this, key, "a string");
}

absl::StatusOr<std::optional<std::vector<std::string>>> GgufFile::GetStringArray(
    std::string_view key) const {
  return GetAs<std::vector<std::string>>(*this, key, "an array of strings");
}

absl::StatusOr<std::optional<std::vector<double>>> GgufFile::GetFloatArray(
    std::string_view key) const {
  const auto it = metadata_.find(key);
  if (it != metadata_.end()) {
    if (const auto* array = std::get_if<GgufValue::Array>(&it->second.value)) {
      if (const auto* ints = std::get_if<std::vector<int64_t>>(array)) {
        return std::optional<std::vector<double>>(std::vector<double>(ints->begin(), ints->end()));
      }
    }
  }
  return GetAs<std::vector<double>>(*this, key, "an array of numbers");
}

absl::StatusOr<std::optional<std::vector<int64_t>>> GgufFile::GetIntArray(
    std::string_view key) const {
  return GetAs<std::vector<int64_t>>(*this, key, "an array of integers");
}

std::vector<std::string> GgufFile::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, view] : tensors_) names.push_back(name);
  return names;  // std::map iterates in sorted order
}

bool GgufFile::Has(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }

absl::StatusOr<TensorView> GgufFile::Get(std::string_view name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat(path(), ": no tensor named '", Sv(name), "'"));
  }
  return it->second;
}

absl::StatusOr<DType> DTypeFromGgml(uint32_t ggml_type) {
  switch (static_cast<GgmlType>(ggml_type)) {
    case GgmlType::kF32:
      return DType::kF32;
    case GgmlType::kF16:
      return DType::kF16;
    case GgmlType::kQ4_0:
      return DType::kQ4_0;
    case GgmlType::kQ8_0:
      return DType::kQ8_0;
    case GgmlType::kBF16:
      return DType::kBF16;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported ggml type ", ggml_type, " (expected F32=0, F16=1, Q4_0=2, Q8_0=8 or BF16=30)"));
}

absl::StatusOr<GgmlType> GgmlFromDType(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return GgmlType::kF32;
    case DType::kF16:
      return GgmlType::kF16;
    case DType::kQ4_0:
      return GgmlType::kQ4_0;
    case DType::kQ8_0:
      return GgmlType::kQ8_0;
    case DType::kBF16:
      return GgmlType::kBF16;
    default:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("dtype ", Sv(DTypeName(dtype)), " has no GGUF tensor type"));
}

}  // namespace strata

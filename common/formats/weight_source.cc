// OpenWeightSource: picks the reader from the path (extension, magic bytes, or folder layout).
#include "common/formats/weight_source.h"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/formats/gguf.h"
#include "common/formats/safetensors.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

bool StartsWithGgufMagic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, sizeof(magic)) && std::memcmp(magic, "GGUF", 4) == 0;
}

absl::StatusOr<std::unique_ptr<WeightSource>> OpenDirectory(const std::string& path) {
  std::error_code ec;
  const fs::path dir(path);
  // Same preference as transformers: the single file first, then the sharded index.
  if (fs::is_regular_file(dir / kSingleFile, ec)) {
    return SafetensorsFile::Open((dir / kSingleFile).string());
  }
  if (fs::is_regular_file(dir / kIndexFile, ec)) {
    return ShardedSafetensors::Open((dir / kIndexFile).string());
  }
  return absl::NotFoundError(
      absl::StrCat(path, ": folder has neither ", kSingleFile, " nor ", kIndexFile));
}

}  // namespace

void PrefetchView(const MappedFile& file, const TensorView& view) {
  const auto start = reinterpret_cast<uintptr_t>(view.data);
  const auto base = reinterpret_cast<uintptr_t>(file.data());
  if (start < base || start >= base + static_cast<uintptr_t>(file.size())) return;
  const int64_t rows = view.Rows(), row_bytes = view.RowBytes();
  if (rows <= 0 || row_bytes <= 0) return;
  // A gap shorter than a page holds no whole page, so one range reads nothing extra.
  if (view.row_stride_bytes - row_bytes < MappedFile::PageSize()) {
    file.WillNeed(view.data, (rows - 1) * view.row_stride_bytes + row_bytes);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) file.WillNeed(view.Row(r), row_bytes);
}

absl::StatusOr<std::unique_ptr<WeightSource>> OpenWeightSource(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file or folder"));
  }
  if (fs::is_directory(status)) return OpenDirectory(path);
  if (absl::EndsWith(path, ".safetensors")) return SafetensorsFile::Open(path);
  if (absl::EndsWith(path, ".safetensors.index.json")) return ShardedSafetensors::Open(path);
  if (absl::EndsWith(path, ".gguf") || StartsWithGgufMagic(path)) return GgufFile::Open(path);
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": not a model (expected a .gguf file, a .safetensors file, or a folder with ",
      kSingleFile, " or ", kIndexFile, ")"));
}

}  // namespace strata

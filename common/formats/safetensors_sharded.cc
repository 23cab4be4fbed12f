// ShardedSafetensors: resolves model.safetensors.index.json's weight_map to shard files.
#include <filesystem>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/json.h"
#include "common/formats/safetensors.h"
#include "common/status.h"

namespace strata {
namespace {


// A shard must be a plain file name in the index's folder (no paths, no "..").
bool IsPlainFileName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

absl::StatusOr<boost::json::object> ReadIndex(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(path));
  file->WillNeed(file->data(), file->size());  // parsed whole; the mapping reads nothing ahead
  STRATA_ASSIGN_OR_RETURN(boost::json::object index,
                          ParseJsonObject(
                              path, "index",
                              std::string_view(reinterpret_cast<const char*>(file->data()),
                                               static_cast<size_t>(file->size()))));
  return index;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShardedSafetensors>> ShardedSafetensors::Open(
    const std::string& index_path) {
  STRATA_ASSIGN_OR_RETURN(boost::json::object index, ReadIndex(index_path));
  const boost::json::value* map_value = index.if_contains("weight_map");
  const boost::json::object* weight_map = map_value == nullptr ? nullptr : map_value->if_object();
  if (weight_map == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": missing \"weight_map\" object"));
  }
  std::unique_ptr<ShardedSafetensors> source(new ShardedSafetensors());
  source->path_ = index_path;
  const std::filesystem::path dir = std::filesystem::path(index_path).parent_path();
  absl::flat_hash_map<std::string, const SafetensorsFile*> opened;
  for (const auto& kv : *weight_map) {
    const std::string_view name = kv.key();
    const boost::json::string* shard = kv.value().if_string();
    if (shard == nullptr || !IsPlainFileName(*shard)) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": weight_map['", Sv(name),
                       "'] must be a shard file name in the same folder"));
    }
    auto [it, inserted] = opened.try_emplace(std::string(*shard), nullptr);
    if (inserted) {
      STRATA_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                              SafetensorsFile::Open((dir / std::string(*shard)).string()));
      it->second = file.get();
      source->shards_.push_back(std::move(file));
    }
    if (!it->second->Has(name)) {
      return absl::NotFoundError(absl::StrCat(index_path, ": tensor '", Sv(name),
                                              "' is mapped to shard ", Sv(std::string_view(*shard)),
                                              ", which does not contain it"));
    }
    source->tensor_shard_.emplace(std::string(name), it->second);
  }
  return source;
}

std::vector<std::string> ShardedSafetensors::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(tensor_shard_.size());
  for (const auto& [name, shard] : tensor_shard_) names.push_back(name);
  return names;
}

bool ShardedSafetensors::Has(std::string_view name) const {
  return tensor_shard_.find(name) != tensor_shard_.end();
}

absl::StatusOr<TensorView> ShardedSafetensors::Get(std::string_view name) const {
  const auto it = tensor_shard_.find(name);
  if (it == tensor_shard_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor named '", Sv(name), "'"));
  }
  return it->second->Get(name);
}

}  // namespace strata

#include "common/formats/safetensors_writer.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "boost/json.hpp"
#include "common/formats/checked_math.h"
#include "common/formats/safetensors.h"
#include "common/status.h"

namespace strata {
namespace {

constexpr absl::string_view kContext = "SafetensorsWriter";

// The JSON header for `tensors` laid out back to back, padded with spaces to a multiple of 8.
std::string EncodeHeader(const std::map<std::string, std::string>& metadata,
                         const std::vector<const PendingTensor*>& tensors) {
  boost::json::object header;
  if (!metadata.empty()) {
    boost::json::object meta;
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  int64_t offset = 0;
  for (const PendingTensor* t : tensors) {
    boost::json::object entry;
    entry["dtype"] = *SafetensorsDTypeName(t->dtype);  // checked at Add
    boost::json::array shape;
    for (int64_t d : t->shape) shape.push_back(d);
    entry["shape"] = std::move(shape);
    entry["data_offsets"] = boost::json::array{offset, offset + t->bytes};
    header[t->name] = std::move(entry);
    offset += t->bytes;
  }
  std::string text = boost::json::serialize(header);
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

std::string ShardName(size_t index, size_t count) {
  return absl::StrFormat("model-%05d-of-%05d.safetensors", index + 1, count);
}

}  // namespace

void SafetensorsWriter::SetMetadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

absl::Status SafetensorsWriter::AddTensor(std::string name, DType dtype, Shape shape,
                                          const void* data) {
  // An invalid shape is rejected by AddTensorProducer before the size is ever used.
  const int64_t elems = formats_internal::CheckedNumElements(shape).value_or(0);
  const int64_t bytes = formats_internal::CheckedElementsToBytes(dtype, elems).value_or(0);
  return AddTensorProducer(std::move(name), dtype, std::move(shape), BorrowedBytes(data, bytes));
}

absl::Status SafetensorsWriter::AddTensorOwned(std::string name, DType dtype, Shape shape,
                                               std::vector<std::byte> data) {
  return AddTensorProducer(std::move(name), dtype, std::move(shape), OwnedBytes(std::move(data)));
}

absl::Status SafetensorsWriter::AddTensorProducer(std::string name, DType dtype, Shape shape,
                                                  TensorProducer produce) {
  absl::StatusOr<std::string_view> st_name = SafetensorsDTypeName(dtype);
  if (!st_name.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kContext, ": tensor '", name, "': ", st_name.status().message()));
  }
  if (name == "__metadata__") {
    return absl::InvalidArgumentError(absl::StrCat(kContext, ": '__metadata__' is reserved"));
  }
  return tensors_.Add(kContext, std::move(name), dtype, std::move(shape), std::move(produce),
                      /*allow_zero_dims=*/true);
}

std::vector<const PendingTensor*> SafetensorsWriter::DataOrder() const {
  std::vector<const PendingTensor*> order;
  for (const PendingTensor& t : tensors_.tensors()) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const PendingTensor* a, const PendingTensor* b) {
    return GetDTypeInfo(a->dtype).block_bytes > GetDTypeInfo(b->dtype).block_bytes;
  });
  return order;
}

absl::Status SafetensorsWriter::WriteFile(const std::string& path,
                                          const std::vector<const PendingTensor*>& tensors) const {
  const std::string header = EncodeHeader(metadata_, tensors);
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<OutputFile> out, OutputFile::Create(path));
  const uint64_t header_len = header.size();
  STRATA_RETURN_IF_ERROR(out->Write(&header_len, sizeof(header_len)));
  STRATA_RETURN_IF_ERROR(out->Write(header.data(), header.size()));
  for (const PendingTensor* t : tensors) STRATA_RETURN_IF_ERROR(out->WriteTensor(*t));
  return out->Commit();
}

absl::Status SafetensorsWriter::Write(const std::string& path) const {
  return WriteFile(path, DataOrder());
}

absl::Status SafetensorsWriter::WriteSharded(const std::string& dir,
                                             int64_t max_shard_bytes) const {
  if (max_shard_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kContext, ": max_shard_bytes must be > 0, got ", max_shard_bytes));
  }
  std::vector<std::vector<const PendingTensor*>> shards;
  int64_t shard_bytes = 0, total_bytes = 0;
  for (const PendingTensor* t : DataOrder()) {
    if (shards.empty() || (shard_bytes > 0 && shard_bytes + t->bytes > max_shard_bytes)) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(t);
    shard_bytes += t->bytes;
    total_bytes += t->bytes;
  }
  if (shards.empty()) shards.emplace_back();
  boost::json::object weight_map;
  const std::filesystem::path folder(dir);
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name = ShardName(i, shards.size());
    STRATA_RETURN_IF_ERROR(WriteFile((folder / name).string(), shards[i]));
    for (const PendingTensor* t : shards[i]) weight_map[t->name] = name;
  }
  boost::json::object index;
  index["metadata"] = boost::json::object{{"total_size", total_bytes}};
  index["weight_map"] = std::move(weight_map);
  const std::string text = boost::json::serialize(index);
  const std::string index_path = (folder / "model.safetensors.index.json").string();
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<OutputFile> out, OutputFile::Create(index_path));
  STRATA_RETURN_IF_ERROR(out->Write(text.data(), text.size()));
  return out->Commit();
}

}  // namespace strata

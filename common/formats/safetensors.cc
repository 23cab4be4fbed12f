// Safetensors single-file parsing and validation: header length, JSON header, then each
// tensor entry (parse), then the set of data ranges (validate: in range, exact size, disjoint).
#include "common/formats/safetensors.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/formats/checked_math.h"
#include "common/json.h"
#include "common/status.h"

namespace strata {
namespace {

using formats_internal::CheckedElementsToBytes;
using formats_internal::CheckedNumElements;

constexpr std::string_view kMetadataKey = "__metadata__";

struct DTypeEntry {
  std::string_view name;
  DType dtype;
};
constexpr std::array<DTypeEntry, 5> kDTypes = {{
    {"F32", DType::kF32},
    {"F16", DType::kF16},
    {"BF16", DType::kBF16},
    {"I32", DType::kI32},
    {"I8", DType::kI8},
}};

// One header entry as parsed, before ranges are cross-checked.
struct Entry {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  int64_t begin = 0;
  int64_t end = 0;
};

absl::Status EntryError(const std::string& path, absl::string_view name, absl::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "': ", msg));
}

absl::StatusOr<Shape> ParseShape(const std::string& path, absl::string_view name,
                                 const boost::json::value* v) {
  const boost::json::array* dims = v == nullptr ? nullptr : v->if_array();
  if (dims == nullptr) return EntryError(path, name, "\"shape\" must be an array of integers");
  if (dims->size() > 8) {
    return EntryError(path, name, absl::StrCat("\"shape\" has ", dims->size(), " dims (max 8)"));
  }
  Shape shape;
  for (const boost::json::value& d : *dims) {
    const std::optional<int64_t> dim = AsNonNegativeInt(d);
    if (!dim) return EntryError(path, name, "\"shape\" entries must be integers >= 0");
    shape.push_back(*dim);
  }
  return shape;
}

absl::StatusOr<Entry> ParseEntry(const std::string& path, absl::string_view name,
                                 const boost::json::value& v) {
  Entry entry;
  entry.name = std::string(name);
  const boost::json::object* obj = v.if_object();
  if (obj == nullptr) return EntryError(path, name, "entry must be a JSON object");
  const boost::json::value* dtype = obj->if_contains("dtype");
  if (dtype == nullptr || !dtype->is_string()) {
    return EntryError(path, name, "\"dtype\" must be a string");
  }
  const boost::json::string& dtype_name = dtype->get_string();
  absl::StatusOr<DType> parsed =
      DTypeFromSafetensors(std::string_view(dtype_name.data(), dtype_name.size()));
  if (!parsed.ok()) return EntryError(path, name, parsed.status().message());
  entry.dtype = *parsed;
  STRATA_ASSIGN_OR_RETURN(entry.shape, ParseShape(path, name, obj->if_contains("shape")));
  const boost::json::value* offsets = obj->if_contains("data_offsets");
  const boost::json::array* pair = offsets == nullptr ? nullptr : offsets->if_array();
  std::optional<int64_t> begin, end;
  if (pair != nullptr && pair->size() == 2) {
    begin = AsNonNegativeInt((*pair)[0]);
    end = AsNonNegativeInt((*pair)[1]);
  }
  if (!begin || !end || *end < *begin) {
    return EntryError(path, name, "\"data_offsets\" must be [begin, end] with 0 <= begin <= end");
  }
  entry.begin = *begin;
  entry.end = *end;
  return entry;
}

// Checks the entry's size against its shape and dtype and its range against the buffer.
absl::Status CheckEntry(const std::string& path, const Entry& e, int64_t buffer_size) {
  const std::optional<int64_t> elems = CheckedNumElements(e.shape);
  if (!elems) {
    return EntryError(path, e.name,
                      absl::StrCat("element count of ", ShapeToString(e.shape), " overflows"));
  }
  const std::optional<int64_t> bytes = CheckedElementsToBytes(e.dtype, *elems);
  if (!bytes) {  // a count that fits int64 can still overflow in bytes (f64: x8)
    return EntryError(path, e.name,
                      absl::StrCat("byte size of ", ShapeToString(e.shape), " overflows"));
  }
  const int64_t expected = *bytes;
  if (e.end - e.begin != expected) {
    return EntryError(path, e.name,
                      absl::StrCat("data_offsets [", e.begin, ", ", e.end, ") hold ",
                                   e.end - e.begin, " bytes, but ", Sv(DTypeName(e.dtype)), " ",
                                   ShapeToString(e.shape), " needs ", expected));
  }
  if (e.end > buffer_size) {
    return EntryError(path, e.name,
                      absl::StrCat("data_offsets [", e.begin, ", ", e.end,
                                   ") exceed the data buffer of ", buffer_size, " bytes"));
  }
  return absl::OkStatus();
}

// Sorts by offset and rejects two non-empty ranges that overlap.
absl::Status CheckDisjoint(const std::string& path, std::vector<const Entry*> entries) {
  std::sort(entries.begin(), entries.end(),
            [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  const Entry* prev = nullptr;
  for (const Entry* e : entries) {
    if (e->begin == e->end) continue;
    if (prev != nullptr && e->begin < prev->end) {
      return EntryError(path, e->name,
                        absl::StrCat("data_offsets [", e->begin, ", ", e->end, ") overlap tensor '",
                                     prev->name, "' [", prev->begin, ", ", prev->end, ")"));
    }
    prev = e;
  }
  return absl::OkStatus();
}

absl::Status ParseMetadata(const std::string& path, const boost::json::value& v,
                           std::map<std::string, std::string, std::less<>>* out) {
  const boost::json::object* obj = v.if_object();
  if (obj == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": \"__metadata__\" must be an object"));
  }
  for (const auto& kv : *obj) {
    if (!kv.value().is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": \"__metadata__\" key '",
                                                     Sv(std::string_view(kv.key())),
                                                     "' must map to a string"));
    }
    (*out)[std::string(kv.key())] = std::string(kv.value().get_string());
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DType> DTypeFromSafetensors(std::string_view name) {
  for (const auto& d : kDTypes) {
    if (d.name == name) return d.dtype;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported dtype \"", Sv(name), "\" (expected F32, F16, BF16, I32 or I8)"));
}

absl::StatusOr<std::string_view> SafetensorsDTypeName(DType dtype) {
  for (const auto& d : kDTypes) {
    if (d.dtype == dtype) return d.name;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("dtype ", Sv(DTypeName(dtype)), " cannot be stored in safetensors"));
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  STRATA_ASSIGN_OR_RETURN(file->file_, MappedFile::Open(path));
  STRATA_RETURN_IF_ERROR(file->Parse());
  return file;
}

absl::Status SafetensorsFile::Parse() {
  const std::string& p = path();
  const int64_t size = file_->size();
  uint64_t header_len = 0;
  if (size < 8) {
    return absl::InvalidArgumentError(
        absl::StrCat(p, ": file of ", size, " bytes is too small for a safetensors header"));
  }
  std::memcpy(&header_len, file_->data(), sizeof(header_len));
  if (header_len > static_cast<uint64_t>(size - 8) ||
      header_len > static_cast<uint64_t>(kSafetensorsMaxHeaderBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(p, ": header length ", header_len,
                                                   " exceeds the file size ", size,
                                                   " or the limit ", kSafetensorsMaxHeaderBytes));
  }
  // The mapping reads nothing ahead (mapped_file.h): ask for the whole header at once.
  file_->WillNeed(file_->data(), 8 + static_cast<int64_t>(header_len));
  const std::byte* buffer = file_->data() + 8 + header_len;
  const int64_t buffer_size = size - 8 - static_cast<int64_t>(header_len);
  STRATA_ASSIGN_OR_RETURN(
      boost::json::object header,
      ParseJsonObject(
          p, "header",
          std::string_view(reinterpret_cast<const char*>(file_->data() + 8), header_len)));
  std::vector<Entry> entries;
  entries.reserve(header.size());
  for (const auto& kv : header) {
    if (kv.key() == kMetadataKey) {
      STRATA_RETURN_IF_ERROR(ParseMetadata(p, kv.value(), &metadata_));
      continue;
    }
    const std::string_view key = kv.key();
    STRATA_ASSIGN_OR_RETURN(Entry e, ParseEntry(p, Sv(key), kv.value()));
    STRATA_RETURN_IF_ERROR(CheckEntry(p, e, buffer_size));
    entries.push_back(std::move(e));
  }
  std::vector<const Entry*> ptrs;
  for (const Entry& e : entries) ptrs.push_back(&e);
  STRATA_RETURN_IF_ERROR(CheckDisjoint(p, std::move(ptrs)));
  for (Entry& e : entries) {
    tensors_.emplace(std::move(e.name), MakeView(e.dtype, std::move(e.shape), buffer + e.begin));
  }
  return absl::OkStatus();
}

std::vector<std::string> SafetensorsFile::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, view] : tensors_) names.push_back(name);
  return names;
}

bool SafetensorsFile::Has(std::string_view name) const {
  return tensors_.find(name) != tensors_.end();
}

absl::StatusOr<TensorView> SafetensorsFile::Get(std::string_view name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat(path(), ": no tensor named '", Sv(name), "'"));
  }
  return it->second;
}

}  // namespace strata

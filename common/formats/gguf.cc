// GGUF parsing and validation.
//
// The whole file is mmap'ed and parsed once, front to back, by GgufParser through a bounded
// cursor: every read is checked against the bytes left, every count is checked against the
// smallest encoding of that many items before anything is reserved, and all offset and size
// arithmetic is overflow-checked. After Open succeeds every TensorView lies inside the file,
// tensors do not overlap, and each one's byte size equals shape x dtype, so callers never
// re-validate. Metadata accessors live in gguf_metadata.cc.
#include "common/formats/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/formats/checked_math.h"
#include "common/formats/gguf_constants.h"
#include "common/status.h"

namespace strata {
namespace {

using formats_internal::AlignUp;
using formats_internal::CheckedAdd;
using formats_internal::CheckedElementsToBytes;
using formats_internal::CheckedNumElements;

// Smallest possible encodings, used to reject absurd counts before reserving memory.
constexpr int64_t kMinKvBytes = 8 + 4 + 1;                  // key length, type, 1-byte value
constexpr int64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // name, n_dims, ne[1], type, offset

// A tensor info as read, before its data range is placed.
struct RawTensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;  // outermost first
  int64_t offset = 0;
  int64_t bytes = 0;
};

// Bounded little-endian reader over the mapped bytes.
class Cursor {
 public:
  explicit Cursor(const MappedFile& file)
      : path_(file.path()), file_(file), data_(file.data()), size_(file.size()) {}

  int64_t pos() const { return pos_; }
  int64_t remaining() const { return size_ - pos_; }

  template <typename T>
  absl::Status Read(T* out, absl::string_view what) {
    if (remaining() < static_cast<int64_t>(sizeof(T))) return Truncated(what);
    Prefetch(pos_ + static_cast<int64_t>(sizeof(T)));
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  absl::Status ReadString(std::string* out, absl::string_view what) {
    uint64_t len = 0;
    STRATA_RETURN_IF_ERROR(Read(&len, what));
    if (len > static_cast<uint64_t>(remaining())) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": ", what, ": string length ", len,
                                                     " at byte ", pos_ - 8, " exceeds the ",
                                                     remaining(), " bytes left in the file"));
    }
    Prefetch(pos_ + static_cast<int64_t>(len));
    out->assign(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += static_cast<int64_t>(len);
    return absl::OkStatus();
  }

  absl::Status Truncated(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": truncated at byte ", pos_, " while reading ", what, " (file size ", size_, ")"));
  }

 private:
  // The mapping reads nothing ahead (mapped_file.h), so ask for the header a chunk at a time
  // rather than fault it in page by page; reads past its end by less than one chunk.
  void Prefetch(int64_t end) {
    constexpr int64_t kChunk = int64_t{256} << 10;
    if (end <= prefetched_) return;
    const int64_t to = std::max(end, prefetched_ + kChunk);
    file_.WillNeed(data_ + prefetched_, to - prefetched_);
    prefetched_ = to;
  }

  const std::string& path_;
  const MappedFile& file_;
  const std::byte* data_;
  int64_t size_;
  int64_t pos_ = 0;
  int64_t prefetched_ = 0;  // bytes [0, prefetched_) have been asked for
};

}  // namespace

// Parses one mapped file into a GgufFile (a friend, so it fills the private fields).
class GgufParser {
 public:
  explicit GgufParser(GgufFile* file)
      : file_(file),
        path_(file->file_->path()),
        cursor_(*file->file_) {}

  absl::Status Parse() {
    STRATA_RETURN_IF_ERROR(ParseHeader());
    STRATA_RETURN_IF_ERROR(ParseMetadata());
    STRATA_RETURN_IF_ERROR(ParseAlignment());
    std::vector<RawTensorInfo> infos;
    STRATA_RETURN_IF_ERROR(ParseTensorInfos(&infos));
    return PlaceTensors(std::move(infos));
  }

 private:
  absl::Status Error(absl::string_view context, absl::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": ", context, ": ", message));
  }

  // Checks that `count` items of at least `min_bytes` each can fit in the rest of the file.
  absl::Status CheckCount(uint64_t count, int64_t min_bytes, absl::string_view context) const {
    if (count > static_cast<uint64_t>(cursor_.remaining() / min_bytes)) {
      return Error(context, absl::StrCat("count ", count, " cannot fit in the ",
                                         cursor_.remaining(), " bytes left in the file"));
    }
    return absl::OkStatus();
  }

  absl::Status ParseHeader();
  absl::Status ParseMetadata();
  absl::StatusOr<GgufValue> ParseValue(const std::string& key, uint32_t type);
  absl::Status ParseScalar(const std::string& key, uint32_t type, GgufValue* out);
  absl::Status ParseArray(const std::string& key, GgufValue* out);
  template <typename T>
  absl::Status ReadArrayElements(const std::string& key, uint32_t type, uint64_t count,
                                 std::vector<T>* out);
  absl::Status ParseAlignment();
  absl::Status ParseTensorInfos(std::vector<RawTensorInfo>* infos);
  absl::Status ParseTensorInfo(RawTensorInfo* info);
  absl::Status ParseShape(const std::string& context, Shape* shape);
  absl::Status PlaceTensors(std::vector<RawTensorInfo> infos);

  GgufFile* file_;
  const std::string& path_;
  Cursor cursor_;
  uint64_t tensor_count_ = 0;
  uint64_t kv_count_ = 0;
};

absl::Status GgufParser::ParseHeader() {
  uint32_t magic = 0;
  STRATA_RETURN_IF_ERROR(cursor_.Read(&magic, "the magic"));
  if (magic != kGgufMagic) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": not a GGUF file (expected magic \"GGUF\" at byte 0)"));
  }
  STRATA_RETURN_IF_ERROR(cursor_.Read(&file_->version_, "the version"));
  const uint32_t version = file_->version_;
  if (version == 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": GGUF version 1 is not supported (expected version 2 or 3)"));
  }
  if (version != 2 && version != 3) {
    const bool swapped = (version & 0xffff) == 0 && version != 0;
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": unsupported GGUF version ", version, " (expected 2 or 3)",
                     swapped ? "; the file looks big-endian, which Strata does not read" : ""));
  }
  STRATA_RETURN_IF_ERROR(cursor_.Read(&tensor_count_, "tensor_count"));
  STRATA_RETURN_IF_ERROR(cursor_.Read(&kv_count_, "kv_count"));
  STRATA_RETURN_IF_ERROR(CheckCount(kv_count_, kMinKvBytes, "kv_count"));
  return CheckCount(tensor_count_, kMinTensorInfoBytes, "tensor_count");
}

absl::Status GgufParser::ParseMetadata() {
  for (uint64_t i = 0; i < kv_count_; ++i) {
    std::string key;
    STRATA_RETURN_IF_ERROR(cursor_.ReadString(&key, absl::StrCat("metadata key #", i)));
    uint32_t type = 0;
    STRATA_RETURN_IF_ERROR(cursor_.Read(&type, absl::StrCat("the type of key '", key, "'")));
    STRATA_ASSIGN_OR_RETURN(GgufValue value, ParseValue(key, type));
    if (!file_->metadata_.emplace(key, std::move(value)).second) {
      return Error(absl::StrCat("key '", key, "'"), "duplicate metadata key");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<GgufValue> GgufParser::ParseValue(const std::string& key, uint32_t type) {
  GgufValue value;
  value.type = type;
  if (type == static_cast<uint32_t>(GgufValueType::kArray)) {
    STRATA_RETURN_IF_ERROR(ParseArray(key, &value));
  } else {
    STRATA_RETURN_IF_ERROR(ParseScalar(key, type, &value));
  }
  return value;
}

namespace {

// Reads one scalar of GGUF type `type` as T (int64_t, double, bool or std::string).
template <typename T>
absl::Status ReadAs(Cursor& cursor, uint32_t type, const std::string& what, const std::string& path,
                    T* out);

template <typename Raw>
absl::Status ReadRawInt(Cursor& cursor, const std::string& what, int64_t* out) {
  Raw raw{};
  STRATA_RETURN_IF_ERROR(cursor.Read(&raw, what));
  *out = static_cast<int64_t>(raw);
  return absl::OkStatus();
}

template <>
absl::Status ReadAs<int64_t>(Cursor& cursor, uint32_t type, const std::string& what,
                             const std::string& path, int64_t* out) {
  switch (static_cast<GgufValueType>(type)) {
    case GgufValueType::kUint8:
      return ReadRawInt<uint8_t>(cursor, what, out);
    case GgufValueType::kInt8:
      return ReadRawInt<int8_t>(cursor, what, out);
    case GgufValueType::kUint16:
      return ReadRawInt<uint16_t>(cursor, what, out);
    case GgufValueType::kInt16:
      return ReadRawInt<int16_t>(cursor, what, out);
    case GgufValueType::kUint32:
      return ReadRawInt<uint32_t>(cursor, what, out);
    case GgufValueType::kInt32:
      return ReadRawInt<int32_t>(cursor, what, out);
    case GgufValueType::kInt64:
      return ReadRawInt<int64_t>(cursor, what, out);
    case GgufValueType::kUint64: {
      uint64_t raw = 0;
      STRATA_RETURN_IF_ERROR(cursor.Read(&raw, what));
      if (raw > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": ", what, ": uint64 value ", raw,
                                                       " exceeds the supported maximum 2^63-1"));
      }
      *out = static_cast<int64_t>(raw);
      return absl::OkStatus();
    }
    default:
      break;
  }
  return absl::InternalError("not an integer type");
}

template <>
absl::Status ReadAs<double>(Cursor& cursor, uint32_t type, const std::string& what,
                            const std::string& path, double* out) {
  if (type == static_cast<uint32_t>(GgufValueType::kFloat32)) {
    float f = 0;
    STRATA_RETURN_IF_ERROR(cursor.Read(&f, what));
    *out = f;
    return absl::OkStatus();
  }
  return cursor.Read(out, what);
}

template <>
absl::Status ReadAs<bool>(Cursor& cursor, uint32_t type, const std::string& what,
                          const std::string& path, bool* out) {
  uint8_t raw = 0;
  STRATA_RETURN_IF_ERROR(cursor.Read(&raw, what));
  if (raw > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", what, ": bool byte is ", raw, " (expected 0 or 1)"));
  }
  *out = raw == 1;
  return absl::OkStatus();
}

template <>
absl::Status ReadAs<std::string>(Cursor& cursor, uint32_t type, const std::string& what,
                                 const std::string& path, std::string* out) {
  return cursor.ReadString(out, what);
}

enum class ValueKind { kInt, kFloat, kBool, kString, kArray, kUnknown };

ValueKind KindOf(uint32_t type) {
  switch (static_cast<GgufValueType>(type)) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
      return ValueKind::kInt;
    case GgufValueType::kFloat32:
    case GgufValueType::kFloat64:
      return ValueKind::kFloat;
    case GgufValueType::kBool:
      return ValueKind::kBool;
    case GgufValueType::kString:
      return ValueKind::kString;
    case GgufValueType::kArray:
      return ValueKind::kArray;
  }
  return ValueKind::kUnknown;
}

}  // namespace

absl::Status GgufParser::ParseScalar(const std::string& key, uint32_t type, GgufValue* out) {
  const std::string what = absl::StrCat("value of key '", key, "'");
  switch (KindOf(type)) {
    case ValueKind::kInt: {
      int64_t v = 0;
      STRATA_RETURN_IF_ERROR(ReadAs(cursor_, type, what, path_, &v));
      out->value = v;
      return absl::OkStatus();
    }
    case ValueKind::kFloat: {
      double v = 0;
      STRATA_RETURN_IF_ERROR(ReadAs(cursor_, type, what, path_, &v));
      out->value = v;
      return absl::OkStatus();
    }
    case ValueKind::kBool: {
      bool v = false;
      STRATA_RETURN_IF_ERROR(ReadAs(cursor_, type, what, path_, &v));
      out->value = v;
      return absl::OkStatus();
    }
    case ValueKind::kString: {
      std::string v;
      STRATA_RETURN_IF_ERROR(ReadAs(cursor_, type, what, path_, &v));
      out->value = std::move(v);
      return absl::OkStatus();
    }
    default:
      break;
  }
  return Error(absl::StrCat("key '", key, "'"),
               absl::StrCat("unknown value type ", type, " (expected 0..12)"));
}

template <typename T>
absl::Status GgufParser::ReadArrayElements(const std::string& key, uint32_t type, uint64_t count,
                                           std::vector<T>* out) {
  const int scalar = GgufScalarSize(type);
  const int64_t min_bytes = scalar > 0 ? scalar : 8;  // a string is at least its length
  STRATA_RETURN_IF_ERROR(CheckCount(count, min_bytes, absl::StrCat("array key '", key, "'")));
  out->reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    T v{};
    STRATA_RETURN_IF_ERROR(
        ReadAs(cursor_, type, absl::StrCat("element ", i, " of key '", key, "'"), path_, &v));
    out->push_back(std::move(v));
  }
  return absl::OkStatus();
}

absl::Status GgufParser::ParseArray(const std::string& key, GgufValue* out) {
  const std::string context = absl::StrCat("key '", key, "'");
  STRATA_RETURN_IF_ERROR(cursor_.Read(&out->array_type, context + " array type"));
  uint64_t count = 0;
  STRATA_RETURN_IF_ERROR(cursor_.Read(&count, context + " array length"));
  const uint32_t type = out->array_type;
  switch (KindOf(type)) {
    case ValueKind::kInt: {
      std::vector<int64_t> v;
      STRATA_RETURN_IF_ERROR(ReadArrayElements(key, type, count, &v));
      out->value = GgufValue::Array(std::move(v));
      return absl::OkStatus();
    }
    case ValueKind::kFloat: {
      std::vector<double> v;
      STRATA_RETURN_IF_ERROR(ReadArrayElements(key, type, count, &v));
      out->value = GgufValue::Array(std::move(v));
      return absl::OkStatus();
    }
    case ValueKind::kBool: {
      std::vector<bool> v;
      STRATA_RETURN_IF_ERROR(CheckCount(count, 1, context));
      v.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        bool b = false;
        STRATA_RETURN_IF_ERROR(
            ReadAs(cursor_, type, absl::StrCat("element ", i, " of ", context), path_, &b));
        v.push_back(b);
      }
      out->value = GgufValue::Array(std::move(v));
      return absl::OkStatus();
    }
    case ValueKind::kString: {
      std::vector<std::string> v;
      STRATA_RETURN_IF_ERROR(ReadArrayElements(key, type, count, &v));
      out->value = GgufValue::Array(std::move(v));
      return absl::OkStatus();
    }
    case ValueKind::kArray:
      return Error(context, "nested arrays are not supported");
    case ValueKind::kUnknown:
      break;
  }
  return Error(context, absl::StrCat("unknown array element type ", type, " (expected 0..12)"));
}

absl::Status GgufParser::ParseAlignment() {
  const auto it = file_->metadata_.find(kGgufAlignmentKey);
  if (it == file_->metadata_.end()) return absl::OkStatus();
  const int64_t* v = std::get_if<int64_t>(&it->second.value);
  const std::string context = absl::StrCat("key '", Sv(kGgufAlignmentKey), "'");
  if (v == nullptr) return Error(context, "expected an unsigned integer");
  if (*v <= 0 || (*v & (*v - 1)) != 0 || *v > (int64_t{1} << 30)) {
    return Error(context, absl::StrCat("alignment ", *v, " is not a power of two in [1, 2^30]"));
  }
  file_->alignment_ = *v;
  return absl::OkStatus();
}

absl::Status GgufParser::ParseTensorInfos(std::vector<RawTensorInfo>* infos) {
  // The count was checked against the file size in ParseHeader; re-check now that the
  // metadata has been consumed, so the reservation is bounded by what is left.
  STRATA_RETURN_IF_ERROR(CheckCount(tensor_count_, kMinTensorInfoBytes, "tensor_count"));
  infos->resize(tensor_count_);
  absl::flat_hash_set<absl::string_view> names;
  names.reserve(tensor_count_);
  for (RawTensorInfo& info : *infos) {
    STRATA_RETURN_IF_ERROR(ParseTensorInfo(&info));
    if (!names.insert(info.name).second) {
      return Error(absl::StrCat("tensor '", info.name, "'"), "duplicate tensor name");
    }
  }
  return absl::OkStatus();
}

absl::Status GgufParser::ParseShape(const std::string& context, Shape* shape) {
  uint32_t n_dims = 0;
  STRATA_RETURN_IF_ERROR(cursor_.Read(&n_dims, context + " n_dims"));
  if (n_dims < 1 || n_dims > kGgufMaxDims) {
    return Error(context, absl::StrCat("n_dims is ", n_dims, " (expected 1..", kGgufMaxDims, ")"));
  }
  shape->assign(n_dims, 0);
  for (uint32_t i = 0; i < n_dims; ++i) {
    int64_t ne = 0;
    STRATA_RETURN_IF_ERROR(cursor_.Read(&ne, absl::StrCat(context, " ne[", i, "]")));
    if (ne <= 0) {
      return Error(context, absl::StrCat("ne[", i, "] is ", ne, " (expected > 0)"));
    }
    (*shape)[n_dims - 1 - i] = ne;  // GGUF stores innermost first
  }
  return absl::OkStatus();
}

absl::Status GgufParser::ParseTensorInfo(RawTensorInfo* info) {
  STRATA_RETURN_IF_ERROR(cursor_.ReadString(&info->name, "a tensor name"));
  const std::string context = absl::StrCat("tensor '", info->name, "'");
  STRATA_RETURN_IF_ERROR(ParseShape(context, &info->shape));
  uint32_t ggml_type = 0;
  STRATA_RETURN_IF_ERROR(cursor_.Read(&ggml_type, context + " type"));
  absl::StatusOr<DType> dtype = DTypeFromGgml(ggml_type);
  if (!dtype.ok()) return Error(context, dtype.status().message());
  info->dtype = *dtype;
  uint64_t offset = 0;
  STRATA_RETURN_IF_ERROR(cursor_.Read(&offset, context + " offset"));
  if (offset > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Error(context, absl::StrCat("offset ", offset, " is beyond any file"));
  }
  info->offset = static_cast<int64_t>(offset);
  const std::optional<int64_t> elems = CheckedNumElements(info->shape);
  if (!elems) {
    return Error(context,
                 absl::StrCat("element count of ", ShapeToString(info->shape), " overflows int64"));
  }
  if (!IsBlockAligned(info->dtype, info->shape.back())) {
    return Error(context, absl::StrCat("row length ", info->shape.back(), " is not a multiple of ",
                                       Sv(DTypeName(info->dtype)), " block size ",
                                       GetDTypeInfo(info->dtype).block_elems));
  }
  // Found by gguf_fuzz: a count that fits int64 can still overflow in bytes (f32: x4).
  const std::optional<int64_t> bytes = CheckedElementsToBytes(info->dtype, *elems);
  if (!bytes) {
    return Error(context, absl::StrCat("byte size of ", ShapeToString(info->shape), " ",
                                       Sv(DTypeName(info->dtype)), " overflows int64"));
  }
  info->bytes = *bytes;
  return absl::OkStatus();
}

absl::Status GgufParser::PlaceTensors(std::vector<RawTensorInfo> infos) {
  const int64_t file_size = file_->file_->size();
  const int64_t alignment = file_->alignment_;
  const int64_t data_start = *AlignUp(cursor_.pos(), alignment);  // pos <= size: no overflow
  std::sort(infos.begin(), infos.end(),
            [](const RawTensorInfo& a, const RawTensorInfo& b) { return a.offset < b.offset; });
  int64_t prev_end = 0;
  const std::string* prev_name = nullptr;
  for (RawTensorInfo& info : infos) {
    const std::string context = absl::StrCat("tensor '", info.name, "'");
    if (info.offset % alignment != 0) {
      return Error(context, absl::StrCat("offset ", info.offset, " is not a multiple of the ",
                                         "alignment ", alignment));
    }
    const std::optional<int64_t> begin = CheckedAdd(data_start, info.offset);
    const std::optional<int64_t> end = begin ? CheckedAdd(*begin, info.bytes) : std::nullopt;
    if (!end) {
      return Error(context,
                   absl::StrCat("data offset ", info.offset, " + size ", info.bytes, " overflows"));
    }
    if (*end > file_size) {
      return Error(context,
                   absl::StrCat("data [", *begin, ", ", *end, ") exceeds file size ", file_size));
    }
    if (prev_name != nullptr && info.offset < prev_end) {
      return Error(context, absl::StrCat("data at offset ", info.offset, " overlaps tensor '",
                                         *prev_name, "' which ends at offset ", prev_end));
    }
    prev_end = info.offset + info.bytes;
    prev_name = &info.name;
    file_->tensors_.emplace(info.name,
                            MakeView(info.dtype, info.shape, file_->file_->data() + *begin));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  STRATA_ASSIGN_OR_RETURN(file->file_, MappedFile::Open(path));
  GgufParser parser(file.get());
  STRATA_RETURN_IF_ERROR(parser.Parse());
  return file;
}

}  // namespace strata

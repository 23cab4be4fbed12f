// GGUF v3 serialisation. The header (metadata + tensor infos) is encoded into memory first so
// that data offsets are known; tensor payloads are then streamed, each padded to the
// alignment (as llama.cpp does, so the file's size is a multiple of it).
#include "common/formats/gguf_writer.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/formats/checked_math.h"
#include "common/status.h"

namespace strata {
namespace {

constexpr absl::string_view kContext = "GgufWriter";

// Little-endian encoder into a byte string.
class Encoder {
 public:
  template <typename T>
  void Put(T v) {
    char raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    bytes_.append(raw, sizeof(T));
  }
  void PutString(std::string_view s) {
    Put<uint64_t>(s.size());
    bytes_.append(s);
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

absl::Status TypeMismatch(absl::string_view key, uint32_t type) {
  return absl::InvalidArgumentError(absl::StrCat(kContext, ": metadata key '", key,
                                                 "': value does not match its type ",
                                                 Sv(GgufValueTypeName(type))));
}

absl::Status EncodeInt(Encoder& enc, uint32_t type, int64_t v) {
  switch (static_cast<GgufValueType>(type)) {
    case GgufValueType::kUint8:
      enc.Put(static_cast<uint8_t>(v));
      break;
    case GgufValueType::kInt8:
      enc.Put(static_cast<int8_t>(v));
      break;
    case GgufValueType::kUint16:
      enc.Put(static_cast<uint16_t>(v));
      break;
    case GgufValueType::kInt16:
      enc.Put(static_cast<int16_t>(v));
      break;
    case GgufValueType::kUint32:
      enc.Put(static_cast<uint32_t>(v));
      break;
    case GgufValueType::kInt32:
      enc.Put(static_cast<int32_t>(v));
      break;
    case GgufValueType::kUint64:
      enc.Put(static_cast<uint64_t>(v));
      break;
    case GgufValueType::kInt64:
      enc.Put(v);
      break;
    default:
      return absl::InvalidArgumentError("not an integer type");
  }
  return absl::OkStatus();
}

absl::Status EncodeFloat(Encoder& enc, uint32_t type, double v) {
  if (type == static_cast<uint32_t>(GgufValueType::kFloat32)) {
    enc.Put(static_cast<float>(v));
  } else if (type == static_cast<uint32_t>(GgufValueType::kFloat64)) {
    enc.Put(v);
  } else {
    return absl::InvalidArgumentError("not a float type");
  }
  return absl::OkStatus();
}

absl::Status EncodeArray(Encoder& enc, absl::string_view key, const GgufValue& value) {
  const auto* array = std::get_if<GgufValue::Array>(&value.value);
  if (array == nullptr) return TypeMismatch(key, value.type);
  const uint32_t type = value.array_type;
  enc.Put(type);
  absl::Status status = std::visit(
      [&](const auto& items) -> absl::Status {
        using Item = typename std::decay_t<decltype(items)>::value_type;
        enc.Put<uint64_t>(items.size());
        for (const auto& item : items) {
          if constexpr (std::is_same_v<Item, int64_t>) {
            STRATA_RETURN_IF_ERROR(EncodeInt(enc, type, item));
          } else if constexpr (std::is_same_v<Item, double>) {
            STRATA_RETURN_IF_ERROR(EncodeFloat(enc, type, item));
          } else if constexpr (std::is_same_v<Item, bool>) {
            if (type != static_cast<uint32_t>(GgufValueType::kBool)) return absl::UnknownError("");
            enc.Put<uint8_t>(item ? 1 : 0);
          } else {
            if (type != static_cast<uint32_t>(GgufValueType::kString)) {
              return absl::UnknownError("");
            }
            enc.PutString(item);
          }
        }
        return absl::OkStatus();
      },
      *array);
  return status.ok() ? status : TypeMismatch(key, type);
}

absl::Status EncodeValue(Encoder& enc, absl::string_view key, const GgufValue& value) {
  enc.Put(value.type);
  absl::Status status;
  if (const auto* i = std::get_if<int64_t>(&value.value)) {
    status = EncodeInt(enc, value.type, *i);
  } else if (const auto* d = std::get_if<double>(&value.value)) {
    status = EncodeFloat(enc, value.type, *d);
  } else if (const auto* b = std::get_if<bool>(&value.value)) {
    if (value.type != static_cast<uint32_t>(GgufValueType::kBool)) return TypeMismatch(key, 7);
    enc.Put<uint8_t>(*b ? 1 : 0);
  } else if (const auto* s = std::get_if<std::string>(&value.value)) {
    if (value.type != static_cast<uint32_t>(GgufValueType::kString)) return TypeMismatch(key, 8);
    enc.PutString(*s);
  } else {
    if (value.type != static_cast<uint32_t>(GgufValueType::kArray)) return TypeMismatch(key, 9);
    return EncodeArray(enc, key, value);
  }
  return status.ok() ? status : TypeMismatch(key, value.type);
}

// A scalar value of alternative T, built in place.
template <typename T>
GgufValue Scalar(GgufValueType type, T v) {
  GgufValue value;
  value.value.emplace<T>(std::move(v));
  value.type = static_cast<uint32_t>(type);
  return value;
}

GgufValue ArrayOf(GgufValueType element_type, GgufValue::Array items) {
  GgufValue value;
  value.value.emplace<GgufValue::Array>(std::move(items));
  value.type = static_cast<uint32_t>(GgufValueType::kArray);
  value.array_type = static_cast<uint32_t>(element_type);
  return value;
}

}  // namespace

GgufWriter::GgufWriter(int64_t alignment) : alignment_(alignment) {
  STRATA_CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0)
      << "GGUF alignment must be a power of two, got " << alignment;
  if (alignment != kGgufDefaultAlignment) {
    SetUint32(std::string(kGgufAlignmentKey), static_cast<uint32_t>(alignment));
  }
}

void GgufWriter::Set(std::string key, GgufValue value) {
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(std::move(key), std::move(value));
}

void GgufWriter::SetValue(std::string key, GgufValue value) {
  Set(std::move(key), std::move(value));
}

void GgufWriter::SetUint8(std::string key, uint8_t v) {
  Set(std::move(key), Scalar(GgufValueType::kUint8, static_cast<int64_t>(v)));
}
void GgufWriter::SetInt8(std::string key, int8_t v) {
  Set(std::move(key), Scalar(GgufValueType::kInt8, static_cast<int64_t>(v)));
}
void GgufWriter::SetUint16(std::string key, uint16_t v) {
  Set(std::move(key), Scalar(GgufValueType::kUint16, static_cast<int64_t>(v)));
}
void GgufWriter::SetInt16(std::string key, int16_t v) {
  Set(std::move(key), Scalar(GgufValueType::kInt16, static_cast<int64_t>(v)));
}
void GgufWriter::SetUint32(std::string key, uint32_t v) {
  Set(std::move(key), Scalar(GgufValueType::kUint32, static_cast<int64_t>(v)));
}
void GgufWriter::SetInt32(std::string key, int32_t v) {
  Set(std::move(key), Scalar(GgufValueType::kInt32, static_cast<int64_t>(v)));
}
void GgufWriter::SetUint64(std::string key, uint64_t v) {
  Set(std::move(key), Scalar(GgufValueType::kUint64, static_cast<int64_t>(v)));
}
void GgufWriter::SetInt64(std::string key, int64_t v) {
  Set(std::move(key), Scalar(GgufValueType::kInt64, static_cast<int64_t>(v)));
}

void GgufWriter::SetFloat32(std::string key, float v) {
  Set(std::move(key), Scalar(GgufValueType::kFloat32, static_cast<double>(v)));
}
void GgufWriter::SetFloat64(std::string key, double v) {
  Set(std::move(key), Scalar(GgufValueType::kFloat64, v));
}
void GgufWriter::SetBool(std::string key, bool v) {
  Set(std::move(key), Scalar(GgufValueType::kBool, v));
}
void GgufWriter::SetString(std::string key, std::string v) {
  Set(std::move(key), Scalar<std::string>(GgufValueType::kString, std::move(v)));
}
void GgufWriter::SetStringArray(std::string key, std::vector<std::string> v) {
  Set(std::move(key), ArrayOf(GgufValueType::kString, std::move(v)));
}
void GgufWriter::SetIntArray(std::string key, std::vector<int64_t> v, GgufValueType type) {
  Set(std::move(key), ArrayOf(type, std::move(v)));
}
void GgufWriter::SetFloat32Array(std::string key, std::vector<double> v) {
  Set(std::move(key), ArrayOf(GgufValueType::kFloat32, std::move(v)));
}
void GgufWriter::SetBoolArray(std::string key, std::vector<bool> v) {
  Set(std::move(key), ArrayOf(GgufValueType::kBool, std::move(v)));
}

absl::Status GgufWriter::AddTensor(std::string name, DType dtype, Shape shape, const void* data) {
  // An invalid shape is rejected by AddTensorProducer before the size is ever used.
  const int64_t elems = formats_internal::CheckedNumElements(shape).value_or(0);
  const int64_t bytes = formats_internal::CheckedElementsToBytes(dtype, elems).value_or(0);
  return AddTensorProducer(std::move(name), dtype, std::move(shape), BorrowedBytes(data, bytes));
}

absl::Status GgufWriter::AddTensorOwned(std::string name, DType dtype, Shape shape,
                                        std::vector<std::byte> data) {
  return AddTensorProducer(std::move(name), dtype, std::move(shape), OwnedBytes(std::move(data)));
}

absl::Status GgufWriter::AddTensorProducer(std::string name, DType dtype, Shape shape,
                                           TensorProducer produce) {
  if (shape.empty() || shape.size() > static_cast<size_t>(kGgufMaxDims)) {
    return absl::InvalidArgumentError(absl::StrCat(kContext, ": tensor '", name, "': shape ",
                                                   ShapeToString(shape), " must have 1..4 dims"));
  }
  STRATA_RETURN_IF_ERROR(GgmlFromDType(dtype).status());
  return tensors_.Add(kContext, std::move(name), dtype, std::move(shape), std::move(produce),
                      /*allow_zero_dims=*/false);
}

absl::Status GgufWriter::WriteHeader(OutputFile& out) const {
  Encoder enc;
  enc.Put(kGgufMagic);
  enc.Put(kGgufWriteVersion);
  enc.Put<uint64_t>(tensors_.tensors().size());
  enc.Put<uint64_t>(metadata_.size());
  for (const auto& [key, value] : metadata_) {
    enc.PutString(key);
    STRATA_RETURN_IF_ERROR(EncodeValue(enc, key, value));
  }
  int64_t offset = 0;
  for (const PendingTensor& t : tensors_.tensors()) {
    enc.PutString(t.name);
    enc.Put<uint32_t>(t.shape.size());
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) enc.Put<int64_t>(*it);
    enc.Put(static_cast<uint32_t>(*GgmlFromDType(t.dtype)));
    enc.Put<uint64_t>(offset);
    offset = *formats_internal::AlignUp(offset + t.bytes, alignment_);
  }
  STRATA_RETURN_IF_ERROR(out.Write(enc.bytes().data(), enc.bytes().size()));
  return out.WriteZeros(*formats_internal::AlignUp(out.offset(), alignment_) - out.offset());
}

absl::Status GgufWriter::Write(const std::string& path) const {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<OutputFile> out, OutputFile::Create(path));
  STRATA_RETURN_IF_ERROR(WriteHeader(*out));
  for (const PendingTensor& t : tensors_.tensors()) {
    STRATA_RETURN_IF_ERROR(out->WriteTensor(t));
    STRATA_RETURN_IF_ERROR(
        out->WriteZeros(*formats_internal::AlignUp(out->offset(), alignment_) - out->offset()));
  }
  return out->Commit();
}

}  // namespace strata

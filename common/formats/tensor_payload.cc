#include "common/formats/tensor_payload.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/formats/checked_math.h"
#include "common/status.h"

namespace strata {

using formats_internal::CheckedElementsToBytes;
using formats_internal::CheckedNumElements;

absl::Status PendingTensorList::Add(absl::string_view context, std::string name, DType dtype,
                                    Shape shape, TensorProducer produce, bool allow_zero_dims) {
  const std::string where = absl::StrCat(context, ": tensor '", name, "'");
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(context, ": empty tensor name"));
  if (names_.contains(name)) return absl::AlreadyExistsError(where + ": duplicate tensor name");
  for (int64_t d : shape) {
    if (d < 0 || (d == 0 && !allow_zero_dims)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": invalid shape ", ShapeToString(shape)));
    }
  }
  const std::optional<int64_t> elems = CheckedNumElements(shape);
  if (!elems) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": element count of ", ShapeToString(shape), " overflows"));
  }
  const int64_t cols = shape.empty() ? 1 : shape.back();
  if (!IsBlockAligned(dtype, cols)) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": row length ", cols, " is not a multiple of the ",
        Sv(DTypeName(dtype)), " block size ", GetDTypeInfo(dtype).block_elems));
  }
  const std::optional<int64_t> bytes = CheckedElementsToBytes(dtype, *elems);
  if (!bytes) return absl::InvalidArgumentError(where + ": byte size overflows");
  names_.insert(name);
  tensors_.push_back(
      PendingTensor{std::move(name), dtype, std::move(shape), *bytes, std::move(produce)});
  return absl::OkStatus();
}

TensorProducer BorrowedBytes(const void* data, int64_t size) {
  return [data, size](ChunkWriter write) { return write(data, size); };
}

TensorProducer OwnedBytes(std::vector<std::byte> bytes) {
  auto shared = std::make_shared<const std::vector<std::byte>>(std::move(bytes));
  return [shared](ChunkWriter write) {
    return write(shared->data(), static_cast<int64_t>(shared->size()));
  };
}

absl::StatusOr<std::unique_ptr<OutputFile>> OutputFile::Create(const std::string& path) {
  std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return absl::UnavailableError(
        absl::StrCat(path, ": cannot create ", tmp, ": ", std::strerror(errno)));
  }
  std::unique_ptr<OutputFile> out(new OutputFile(path, std::move(tmp), f));
  std::setvbuf(f, out->buffer_.data(), _IOFBF, out->buffer_.size());
  return out;
}

OutputFile::~OutputFile() {
  if (file_ != nullptr) {
    std::fclose(file_);
    std::remove(tmp_path_.c_str());
  }
}

absl::Status OutputFile::Write(const void* data, int64_t size) {
  if (size == 0) return absl::OkStatus();
  if (std::fwrite(data, 1, static_cast<size_t>(size), file_) != static_cast<size_t>(size)) {
    return absl::UnavailableError(
        absl::StrCat(path_, ": write failed at byte ", offset_, ": ", std::strerror(errno)));
  }
  offset_ += size;
  return absl::OkStatus();
}

absl::Status OutputFile::WriteZeros(int64_t size) {
  static constexpr char kZeros[256] = {};
  while (size > 0) {
    const int64_t n = std::min<int64_t>(size, sizeof(kZeros));
    STRATA_RETURN_IF_ERROR(Write(kZeros, n));
    size -= n;
  }
  return absl::OkStatus();
}

absl::Status OutputFile::WriteTensor(const PendingTensor& tensor) {
  const int64_t start = offset_;
  absl::Status status = tensor.produce([&](const void* data, int64_t size) -> absl::Status {
    if (size < 0 || offset_ - start + size > tensor.bytes) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": tensor '", tensor.name,
                                                     "': producer wrote more than ", tensor.bytes,
                                                     " bytes"));
    }
    return Write(data, size);
  });
  STRATA_RETURN_IF_ERROR(status);
  if (offset_ - start != tensor.bytes) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": tensor '", tensor.name,
                                                   "': producer wrote ", offset_ - start,
                                                   " bytes, expected ", tensor.bytes));
  }
  return absl::OkStatus();
}

absl::Status OutputFile::Commit() {
  std::FILE* f = file_;
  file_ = nullptr;
  const bool flushed = std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  const int err = errno;
  if (std::fclose(f) != 0 || !flushed) {
    std::remove(tmp_path_.c_str());
    return absl::UnavailableError(
        absl::StrCat(path_, ": flushing ", tmp_path_, " failed: ", std::strerror(err)));
  }
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    const int rename_err = errno;
    std::remove(tmp_path_.c_str());
    return absl::UnavailableError(
        absl::StrCat(path_, ": rename from ", tmp_path_, " failed: ", std::strerror(rename_err)));
  }
  return absl::OkStatus();
}

}  // namespace strata

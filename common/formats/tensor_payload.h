// Tensor payloads for the model writers (GgufWriter, SafetensorsWriter), and the output file
// they stream into.
//
// A writer records each tensor's name, dtype and shape up front and its bytes lazily: a
// borrowed pointer (read at Write time), an owned buffer, or a producer callback that streams
// the bytes in chunks. So a tool converting a large model never holds two copies of it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/tensor.h"

namespace strata {

// Receives a tensor's bytes, in order, in chunks of any size.
using ChunkWriter = absl::FunctionRef<absl::Status(const void* data, int64_t size)>;

// Streams one tensor's bytes (exactly NumElements(shape) x dtype bytes in total) into `write`.
// Called once, at Write time; a returned error aborts the write.
using TensorProducer = std::function<absl::Status(ChunkWriter write)>;

// One tensor waiting to be written.
struct PendingTensor {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;  // outermost first
  int64_t bytes = 0;
  TensorProducer produce;
};

// An ordered list of pending tensors with unique names; shared by both writers.
class PendingTensorList {
 public:
  // Adds a tensor. Fails on a duplicate name, a negative dimension (or a zero one unless
  // `allow_zero_dims`), a size that overflows, or a row length that is not a whole number of
  // blocks. `context` prefixes error messages (e.g. "GgufWriter").
  absl::Status Add(absl::string_view context, std::string name, DType dtype, Shape shape,
                   TensorProducer produce, bool allow_zero_dims);

  const std::vector<PendingTensor>& tensors() const { return tensors_; }

 private:
  std::vector<PendingTensor> tensors_;
  absl::flat_hash_set<std::string> names_;
};

// Producers for the two common cases.
TensorProducer BorrowedBytes(const void* data, int64_t size);
TensorProducer OwnedBytes(std::vector<std::byte> bytes);

// A file written through a temporary name and renamed into place by Commit, so readers never
// see a half-written model. Destroying it uncommitted removes the temporary.
class OutputFile {
 public:
  static absl::StatusOr<std::unique_ptr<OutputFile>> Create(const std::string& path);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  absl::Status Write(const void* data, int64_t size);
  absl::Status WriteZeros(int64_t size);
  // Streams `tensor` through its producer and checks the byte count.
  absl::Status WriteTensor(const PendingTensor& tensor);
  // Flushes, fsyncs and renames into place.
  absl::Status Commit();
  int64_t offset() const { return offset_; }
  const std::string& path() const { return path_; }

 private:
  OutputFile(std::string path, std::string tmp_path, std::FILE* file)
      : path_(std::move(path)), tmp_path_(std::move(tmp_path)), file_(file) {}

  std::string path_;
  std::string tmp_path_;
  std::FILE* file_;
  int64_t offset_ = 0;
  std::vector<char> buffer_ = std::vector<char>(1 << 20);
};

}  // namespace strata

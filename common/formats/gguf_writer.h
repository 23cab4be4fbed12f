// GgufWriter: builds a GGUF v3 file (metadata + tensors) for tests and `strata` tools.
//
//   GgufWriter w;
//   w.SetString("general.architecture", "llama");
//   w.SetUint32("llama.block_count", 5);
//   STRATA_RETURN_IF_ERROR(w.AddTensor("token_embd.weight", DType::kF32, {512, 64}, ptr));
//   STRATA_RETURN_IF_ERROR(w.Write("model.gguf"));
//
// Shapes are given outermost-first (as GgufFile reports them) and reversed into GGUF's ne[].
// Tensor bytes are read only during Write (borrowed pointers must stay valid until then), so
// a large model is streamed straight to disk. Metadata keys keep their insertion order;
// setting a key again replaces its value in place. Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/formats/gguf.h"
#include "common/formats/gguf_constants.h"
#include "common/formats/tensor_payload.h"

namespace strata {

class GgufWriter {
 public:
  // `alignment` (a power of two) is written as general.alignment when it is not the default 32.
  explicit GgufWriter(int64_t alignment = kGgufDefaultAlignment);

  // Scalar metadata, stored with the GGUF type the name says.
  void SetUint8(std::string key, uint8_t v);
  void SetInt8(std::string key, int8_t v);
  void SetUint16(std::string key, uint16_t v);
  void SetInt16(std::string key, int16_t v);
  void SetUint32(std::string key, uint32_t v);
  void SetInt32(std::string key, int32_t v);
  void SetUint64(std::string key, uint64_t v);
  void SetInt64(std::string key, int64_t v);
  void SetFloat32(std::string key, float v);
  void SetFloat64(std::string key, double v);
  void SetBool(std::string key, bool v);
  void SetString(std::string key, std::string v);

  // Array metadata. Integer arrays take the element type to store (any integer GgufValueType).
  void SetStringArray(std::string key, std::vector<std::string> v);
  void SetIntArray(std::string key, std::vector<int64_t> v,
                   GgufValueType type = GgufValueType::kInt32);
  void SetFloat32Array(std::string key, std::vector<double> v);
  void SetBoolArray(std::string key, std::vector<bool> v);

  // Any value as GgufFile reads it (value.type / array_type say how to store it): copies
  // metadata from one file to another. Inconsistent type ids fail at Write.
  void SetValue(std::string key, GgufValue value);

  // Tensors, in file order. `shape` is outermost-first, 1..4 dims, all > 0, the last one a
  // multiple of the dtype's block size. AddTensor borrows `data` until Write returns.
  absl::Status AddTensor(std::string name, DType dtype, Shape shape, const void* data);
  absl::Status AddTensorOwned(std::string name, DType dtype, Shape shape,
                              std::vector<std::byte> data);
  absl::Status AddTensorProducer(std::string name, DType dtype, Shape shape,
                                 TensorProducer produce);

  // Writes the file (through a temporary name, renamed into place on success).
  absl::Status Write(const std::string& path) const;

 private:
  void Set(std::string key, GgufValue value);
  absl::Status WriteHeader(OutputFile& out) const;

  int64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  PendingTensorList tensors_;
};

}  // namespace strata

// Helpers shared by the format tests: deterministic tensor data, raw byte I/O, a GGUF byte
// builder for crafting malformed files field by field, and a writer-made model used as a
// round-trip subject and as a fuzz seed.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/formats/gguf_constants.h"
#include "common/tensor.h"

namespace strata::testing {

inline std::vector<float> RandomFloats(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// `values` (f32) encoded as `dtype`, row by row.
inline std::vector<std::byte> Encode(DType dtype, const std::vector<float>& values, int64_t cols) {
  const int64_t rows = static_cast<int64_t>(values.size()) / cols;
  const int64_t row_bytes = ElementsToBytes(dtype, cols);
  std::vector<std::byte> out(rows * row_bytes);
  for (int64_t r = 0; r < rows; ++r) {
    if (dtype == DType::kI32 || dtype == DType::kI8) {
      for (int64_t c = 0; c < cols; ++c) {
        const float f = values[r * cols + c] * 50;
        if (dtype == DType::kI32) {
          const int32_t i = static_cast<int32_t>(f);
          std::memcpy(out.data() + r * row_bytes + c * 4, &i, 4);
        } else {
          out[r * row_bytes + c] = static_cast<std::byte>(static_cast<int8_t>(f));
        }
      }
    } else {
      QuantizeRow(dtype, values.data() + r * cols, out.data() + r * row_bytes, cols);
    }
  }
  return out;
}

inline std::string ReadBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void WriteBytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Appends little-endian values to a byte string.
class ByteBuilder {
 public:
  template <typename T>
  ByteBuilder& Put(T v) {
    char raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    bytes_.append(raw, sizeof(T));
    return *this;
  }
  ByteBuilder& Str(const std::string& s) {
    Put<uint64_t>(s.size());
    bytes_ += s;
    return *this;
  }
  ByteBuilder& Raw(const std::string& s) {
    bytes_ += s;
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

// A GGUF file assembled field by field, so a test can corrupt exactly one field.
struct RawGgufTensor {
  std::string name;
  std::vector<int64_t> ne;  // innermost first, as stored
  uint32_t type = 0;
  uint64_t offset = 0;
};

struct RawGguf {
  uint32_t magic = kGgufMagic;
  uint32_t version = 3;
  std::optional<uint64_t> tensor_count;  // overrides tensors.size()
  std::optional<uint64_t> kv_count;      // overrides kvs.size()
  std::vector<std::string> kvs;          // each an encoded key + type + value
  std::vector<RawGgufTensor> tensors;
  int64_t alignment = 32;
  int64_t data_bytes = 0;  // zero bytes appended after the aligned header

  static std::string Kv(const std::string& key, GgufValueType type, const std::string& payload) {
    return ByteBuilder().Str(key).Put(static_cast<uint32_t>(type)).Raw(payload).bytes();
  }
  static std::string KvU32(const std::string& key, uint32_t v) {
    return Kv(key, GgufValueType::kUint32, ByteBuilder().Put(v).bytes());
  }
  static std::string KvString(const std::string& key, const std::string& v) {
    return Kv(key, GgufValueType::kString, ByteBuilder().Str(v).bytes());
  }

  std::string Build() const {
    ByteBuilder b;
    b.Put(magic).Put(version);
    b.Put<uint64_t>(tensor_count.value_or(tensors.size()));
    b.Put<uint64_t>(kv_count.value_or(kvs.size()));
    for (const std::string& kv : kvs) b.Raw(kv);
    for (const RawGgufTensor& t : tensors) {
      b.Str(t.name).Put<uint32_t>(t.ne.size());
      for (int64_t n : t.ne) b.Put(n);
      b.Put(t.type).Put(t.offset);
    }
    std::string bytes = b.bytes();
    bytes.resize((bytes.size() + alignment - 1) / alignment * alignment, '\0');
    bytes.resize(bytes.size() + data_bytes, '\0');
    return bytes;
  }
};

}  // namespace strata::testing

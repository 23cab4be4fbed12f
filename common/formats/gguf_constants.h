// GGUF on-disk constants shared by the reader (gguf.cc) and the writer (gguf_writer.cc).
#pragma once

#include <cstdint>
#include <string_view>

namespace strata {

// Metadata value type ids as stored in GGUF (gguf_type in ggml).
enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian u32
inline constexpr uint32_t kGgufWriteVersion = 3;
inline constexpr int64_t kGgufDefaultAlignment = 32;
inline constexpr int kGgufMaxDims = 4;
inline constexpr std::string_view kGgufAlignmentKey = "general.alignment";

// "uint32", "string", ... or "type <id>" for unknown ids.
std::string_view GgufValueTypeName(uint32_t type);

// Encoded size of a scalar value type, 0 for string/array/unknown.
int GgufScalarSize(uint32_t type);

}  // namespace strata

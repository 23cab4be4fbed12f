// Element types of weights and activations, including the block-quantized GGUF formats.
//
// Block formats store `block_elems` weights in `block_bytes`; a row of a quantized matrix is a
// whole number of blocks. Layouts (identical to GGML's, so GGUF data is used in place):
//   Q8_0: { f16 d; int8 q[32]; }          w = d * q
//   Q4_0: { f16 d; uint8 q[16]; }         w[j] = d * ((q[j] & 15) - 8), w[j+16] = d * ((q[j] >> 4) - 8)
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "absl/status/statusor.h"

namespace strata {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kQ8_0,
  kQ4_0,
  kI32,
  kI8,
  kF8E4M3,  // fp8 e4m3 (see F32ToF8E4M3): the GPU's 8-bit KV cache, with a scale per row
};

struct DTypeInfo {
  const char* name;  // "f32", "f16", "bf16", "q8_0", "q4_0", "i32", "i8", "f8_e4m3"
  int64_t block_elems;    // 1 for plain types
  int64_t block_bytes;    // bytes of one block (element size for plain types)
  bool quantized;
};

const DTypeInfo& GetDTypeInfo(DType dtype);
inline const char* DTypeName(DType dtype) { return GetDTypeInfo(dtype).name; }

// Parses a name as printed by DTypeName (case-insensitive).
absl::StatusOr<DType> ParseDType(std::string_view name);
// Parses a type weights can be converted to on load (f32, f16, bf16, q8_0, q4_0: what --dtype
// takes); InvalidArgument naming the choices for any other.
absl::StatusOr<DType> ParseWeightDType(std::string_view name);

// Bytes of `elems` elements; `elems` must be a multiple of the block size (checked by callers
// through IsBlockAligned first when the count comes from outside).
inline int64_t ElementsToBytes(DType dtype, int64_t elems) {
  const DTypeInfo& info = GetDTypeInfo(dtype);
  return elems / info.block_elems * info.block_bytes;
}
inline bool IsBlockAligned(DType dtype, int64_t elems) {
  return elems % GetDTypeInfo(dtype).block_elems == 0;
}

inline constexpr int64_t kQ8_0BlockElems = 32;
inline constexpr int64_t kQ4_0BlockElems = 32;

struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t q[32];
};
struct BlockQ4_0 {
  uint16_t d;  // f16 scale
  uint8_t q[16];
};
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_0) == 18);

// IEEE half <-> float, exact in both directions (round-to-nearest-even on the way down).
float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);

inline float BF16ToF32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}
// Round-to-nearest-even, NaN kept quiet.
uint16_t F32ToBF16(float f);

// FP8 E4M3 (OCP's E4M3FN, CUDA's __nv_fp8_e4m3: exponent bias 7, no infinities, S.1111.111
// NaN, largest finite 448): the 8-bit KV cache element. Decoding is exact; encoding rounds to
// nearest even and saturates to +-448 (infinities too), bit for bit as __nv_cvt_float_to_fp8
// with __NV_SATFINITE does; NaN stays NaN (CUDA's host path drops a NaN's sign: both decode
// to NaN).
float F8E4M3ToF32(uint8_t x);
uint8_t F32ToF8E4M3(float f);
inline constexpr float kF8E4M3Max = 448.0f;

// Converts `n` elements of `src` (any dtype; n a multiple of its block size) to f32.
void DequantizeRow(DType dtype, const void* src, float* dst, int64_t n);

// Converts `n` f32 values to `dtype` (n a multiple of its block size). Quantization follows
// GGML's reference rounding so a row quantized here equals llama.cpp's quantize of it.
void QuantizeRow(DType dtype, const float* src, void* dst, int64_t n);

}  // namespace strata

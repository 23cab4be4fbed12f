// Overflow-safe integer arithmetic for validating sizes and offsets read from untrusted files.
// Every helper returns std::nullopt instead of wrapping, so callers can turn an overflow into a
// precise error message.
#pragma once

#include <cstdint>
#include <optional>

#include "common/dtype.h"
#include "common/tensor.h"

namespace strata::formats_internal {

inline std::optional<int64_t> CheckedAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

inline std::optional<int64_t> CheckedMul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// Rounds `v` (>= 0) up to a multiple of `alignment` (a power of two), or nullopt on overflow.
inline std::optional<int64_t> AlignUp(int64_t v, int64_t alignment) {
  const std::optional<int64_t> sum = CheckedAdd(v, alignment - 1);
  if (!sum) return std::nullopt;
  return *sum & ~(alignment - 1);
}

// Product of the dimensions, or nullopt when a dimension is negative or the product overflows.
inline std::optional<int64_t> CheckedNumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    const std::optional<int64_t> next = CheckedMul(n, d);
    if (!next) return std::nullopt;
    n = *next;
  }
  return n;
}

// Bytes of `elems` elements of `dtype`; `elems` must already be block-aligned.
inline std::optional<int64_t> CheckedElementsToBytes(DType dtype, int64_t elems) {
  const DTypeInfo& info = GetDTypeInfo(dtype);
  return CheckedMul(elems / info.block_elems, info.block_bytes);
}

}  // namespace strata::formats_internal

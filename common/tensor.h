// TensorView: a typed, non-owning view of tensor bytes (usually inside an mmap'ed model file).
//
// Shapes are row-major with the outermost dimension first, as in PyTorch and safetensors
// (GGUF's ne[] is reversed into this order by its reader). A view is seen as a matrix of
// `Rows()` x `Cols()` (all leading dimensions folded into rows); rows are `row_stride_bytes`
// apart, which lets a column slice stay zero-copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "common/dtype.h"

namespace strata {

using Shape = absl::InlinedVector<int64_t, 4>;

// "[4096, 128]"
std::string ShapeToString(const Shape& shape);
int64_t NumElements(const Shape& shape);

struct TensorView {
  DType dtype = DType::kF32;
  Shape shape;
  const std::byte* data = nullptr;
  int64_t row_stride_bytes = 0;  // distance between consecutive rows (of Cols() elements)

  int64_t Rows() const;
  int64_t Cols() const { return shape.empty() ? 1 : shape.back(); }
  int64_t NumElements() const { return strata::NumElements(shape); }
  // Bytes of one row's payload (not the stride).
  int64_t RowBytes() const { return ElementsToBytes(dtype, Cols()); }
  bool IsContiguous() const { return row_stride_bytes == RowBytes(); }
  const std::byte* Row(int64_t r) const { return data + r * row_stride_bytes; }

  // Rows [begin, end) of the folded matrix: keeps the trailing dimension, shape becomes
  // [end - begin, Cols()].
  absl::StatusOr<TensorView> SliceRows(int64_t begin, int64_t end) const;
  // Columns [begin, end); for block-quantized dtypes both ends must be block-aligned.
  absl::StatusOr<TensorView> SliceCols(int64_t begin, int64_t end) const;
};

// Builds a contiguous view.
TensorView MakeView(DType dtype, Shape shape, const void* data);

}  // namespace strata

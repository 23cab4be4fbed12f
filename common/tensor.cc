#include "common/tensor.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace strata {

std::string ShapeToString(const Shape& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t TensorView::Rows() const {
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
  return rows;
}

absl::StatusOr<TensorView> TensorView::SliceRows(int64_t begin, int64_t end) const {
  if (begin < 0 || end < begin || end > Rows()) {
    return absl::OutOfRangeError(absl::StrCat("row slice [", begin, ", ", end,
                                              ") outside tensor of shape ", ShapeToString(shape)));
  }
  TensorView v = *this;
  v.shape = {end - begin, Cols()};
  v.data = data + begin * row_stride_bytes;
  return v;
}

absl::StatusOr<TensorView> TensorView::SliceCols(int64_t begin, int64_t end) const {
  if (begin < 0 || end < begin || end > Cols()) {
    return absl::OutOfRangeError(absl::StrCat("column slice [", begin, ", ", end,
                                              ") outside tensor of shape ", ShapeToString(shape)));
  }
  if (!IsBlockAligned(dtype, begin) || !IsBlockAligned(dtype, end)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "column slice [", begin, ", ", end, ") of a ", DTypeName(dtype),
        " tensor must be aligned to its block of ", GetDTypeInfo(dtype).block_elems));
  }
  TensorView v = *this;
  v.shape = {Rows(), end - begin};
  v.data = data + ElementsToBytes(dtype, begin);
  return v;
}

TensorView MakeView(DType dtype, Shape shape, const void* data) {
  TensorView v;
  v.dtype = dtype;
  v.shape = std::move(shape);
  v.data = static_cast<const std::byte*>(data);
  v.row_stride_bytes = v.RowBytes();
  return v;
}

}  // namespace strata

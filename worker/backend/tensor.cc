#include "worker/backend/tensor.h"

#include "common/status.h"

namespace strata {

int64_t Tensor::Rows() const {
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
  return rows;
}

Tensor Tensor::Reshape(Shape new_shape) const {
  STRATA_CHECK(strata::NumElements(new_shape) == NumElements())
      << "Reshape " << ShapeToString(shape) << " to " << ShapeToString(new_shape);
  Tensor t = *this;
  t.shape = std::move(new_shape);
  return t;
}

Tensor Tensor::SliceRows(int64_t begin, int64_t end) const {
  STRATA_CHECK(begin >= 0 && begin <= end && end <= Rows())
      << "SliceRows [" << begin << ", " << end << ") of " << ShapeToString(shape);
  Tensor t = *this;
  t.shape = {end - begin, Cols()};
  t.data = data + ElementsToBytes(dtype, begin * Cols());
  return t;
}

Tensor MakeTensor(DType dtype, Shape shape, void* data) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data = static_cast<std::byte*>(data);
  return t;
}

}  // namespace strata

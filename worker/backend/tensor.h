// Tensors as backends hold them.
//
// Tensor: a typed, non-owning view of memory a backend owns (host memory for `cpu`, device
// memory for `cuda`). Model code hands tensors to backend ops and never dereferences their
// data, so the same model code runs on every backend. Shapes are row-major, outermost first;
// a tensor is also seen as a matrix of Rows() x Cols() (leading dimensions folded).
//
// Weight: a read-only tensor of model parameters plus whatever keeps its bytes alive (nothing
// for a zero-copy view of a mapped file, an owned copy after conversion or upload).
//
// Buffer: an owned backend allocation (activations, the KV cache), freed with its last copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/dtype.h"
#include "common/tensor.h"

namespace strata {

struct Tensor {
  DType dtype = DType::kF32;
  Shape shape;
  std::byte* data = nullptr;

  int64_t Rows() const;
  int64_t Cols() const { return shape.empty() ? 1 : shape.back(); }
  int64_t NumElements() const { return strata::NumElements(shape); }
  int64_t Bytes() const { return ElementsToBytes(dtype, NumElements()); }
  bool empty() const { return data == nullptr; }

  // The same bytes seen with another shape of as many elements.
  Tensor Reshape(Shape new_shape) const;
  // Rows [begin, end) of the folded matrix, shape [end - begin, Cols()].
  Tensor SliceRows(int64_t begin, int64_t end) const;
  template <class T>
  T* As() const {
    return reinterpret_cast<T*>(data);
  }
};

// A tensor over `data` (backend memory).
Tensor MakeTensor(DType dtype, Shape shape, void* data);

struct Weight {
  TensorView view;  // in the backend's memory; rows may be strided (zero-copy column slices)
  std::shared_ptr<const void> storage;

  int64_t Bytes() const { return view.Rows() * view.RowBytes(); }
  bool empty() const { return view.shape.empty(); }
};

struct Buffer {
  Tensor tensor;
  std::shared_ptr<void> storage;
};

}  // namespace strata

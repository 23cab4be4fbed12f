#include "worker/model/layer.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace strata {

absl::Status StepContext::AllReduce(const Tensor& t) {
  if (tp_comm == nullptr) return absl::OkStatus();
  // The collective reads the tensor: the ops that wrote it must be done (and good).
  STRATA_RETURN_IF_ERROR(backend.Sync());
  if (t.dtype != DType::kF32) {
    return absl::UnimplementedError(
        absl::StrCat("all-reduce of ", DTypeName(t.dtype), " activations"));
  }
  return tp_comm->AllReduceSum(t.As<float>(), t.NumElements());
}

absl::Status StepContext::AllGather(const Tensor& in, const Tensor& out) {
  if (tp_comm == nullptr) {
    backend.CopyColumns(in.Reshape({1, in.NumElements()}), 0, out.Reshape({1, in.NumElements()}),
                        0, in.NumElements());
    return absl::OkStatus();
  }
  STRATA_RETURN_IF_ERROR(backend.Sync());
  if (in.dtype != DType::kF32 || out.dtype != DType::kF32 ||
      out.NumElements() != in.NumElements() * tp_size) {
    return absl::InvalidArgumentError("all-gather: f32 tensors of [tp, n] and [n]");
  }
  return tp_comm->AllGather(in.As<float>(), in.NumElements(), out.As<float>());
}

}  // namespace strata

#include "worker/model/layer.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace strata {

namespace {

// Before a collective reads what the step's ops wrote: they must be done (and good), unless
// the communicator queues the collective behind them on the backend's stream.
absl::Status WritersDone(Backend& backend, const Communicator& comm) {
  return comm.stream() != nullptr ? absl::OkStatus() : backend.Sync();
}

}  // namespace

absl::Status StepContext::AllReduce(const Tensor& t) {
  if (tp_comm == nullptr) return absl::OkStatus();
  STRATA_RETURN_IF_ERROR(WritersDone(backend, *tp_comm));
  if (t.dtype == DType::kF32) return tp_comm->AllReduceSum(t.As<float>(), t.NumElements());
  // Summed in f32, rounded once: the same bits on every rank whatever the reduction order.
  const Tensor wide = ws.Get("comm_in_f32", {t.NumElements()});
  backend.Convert(t, wide);
  STRATA_RETURN_IF_ERROR(WritersDone(backend, *tp_comm));
  STRATA_RETURN_IF_ERROR(tp_comm->AllReduceSum(wide.As<float>(), wide.NumElements()));
  backend.Convert(wide, t);
  return absl::OkStatus();
}

absl::Status StepContext::AllGather(const Tensor& in, const Tensor& out) {
  if (tp_comm == nullptr) {
    backend.CopyColumns(in.Reshape({1, in.NumElements()}), 0, out.Reshape({1, in.NumElements()}),
                        0, in.NumElements());
    return absl::OkStatus();
  }
  STRATA_RETURN_IF_ERROR(WritersDone(backend, *tp_comm));
  if (in.dtype != out.dtype || out.NumElements() != in.NumElements() * tp_size) {
    return absl::InvalidArgumentError("all-gather: tensors of one dtype, [tp, n] and [n]");
  }
  if (in.dtype == DType::kF32) {
    return tp_comm->AllGather(in.As<float>(), in.NumElements(), out.As<float>());
  }
  const Tensor wide_in = ws.Get("comm_in_f32", {in.NumElements()});
  const Tensor wide_out = ws.Get("comm_out_f32", {out.NumElements()});
  backend.Convert(in, wide_in);
  STRATA_RETURN_IF_ERROR(WritersDone(backend, *tp_comm));
  STRATA_RETURN_IF_ERROR(
      tp_comm->AllGather(wide_in.As<float>(), wide_in.NumElements(), wide_out.As<float>()));
  backend.Convert(wide_out, out);
  return absl::OkStatus();
}

void ReserveCommSlots(Workspace& ws, int tp_size, int64_t per_row, int64_t gather_per_row) {
  if (tp_size <= 1 || ws.activation_dtype() == DType::kF32) return;
  ws.Reserve("comm_in_f32", DType::kF32, per_row);
  if (gather_per_row > 0) ws.Reserve("comm_out_f32", DType::kF32, gather_per_row);
}

}  // namespace strata

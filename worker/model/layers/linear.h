// Linear layers under tensor parallelism, in the style of Megatron and vLLM's
// ColumnParallelLinear / RowParallelLinear: the split of each weight is decided here, from
// the rank's TpLayout ranges, and nowhere else.
//
//   column-parallel: the rank holds rows [begin, end) of a stored [out, in] weight (and of its
//                    bias); its output is the rank's slice of the features;
//   row-parallel:    the rank holds columns [begin, end) (its slice of the input features);
//                    outputs are partial sums that the caller all-reduces. The bias is held
//                    by TP rank 0 only, so the all-reduce adds it exactly once;
//   fused:           several column-parallel parts stored one after another in one tensor
//                    (qkv_proj, gate_up_proj, query_key_value): each part is its own zero-copy
//                    row slice, and the parts run together as one MatMulGroup.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/model/layer.h"

namespace strata {

struct Linear {
  Weight weight;  // [out_local, in_local]
  Weight bias;    // [out_local] f32, or empty

  const Weight* bias_or_null() const { return bias.empty() ? nullptr : &bias; }
  // y = x · weight^T (+ bias).   x: [rows, in_local]; y: [rows, out_local]
  void Forward(Backend& backend, const Tensor& x, const Tensor& y) const {
    backend.MatMul(x, weight, bias_or_null(), y);
  }
};

absl::StatusOr<Linear> LoadColumnParallel(WeightLoader& weights, std::string_view role,
                                          int64_t layer, int64_t out, int64_t in, Range rows,
                                          bool bias);

// Parts i = 0.. of a stored [sum(part_rows), in] tensor; this rank takes `rows[i]` of part i.
absl::StatusOr<std::vector<Linear>> LoadFusedColumnParallel(WeightLoader& weights,
                                                            std::string_view role, int64_t layer,
                                                            absl::Span<const int64_t> part_rows,
                                                            int64_t in,
                                                            absl::Span<const Range> rows,
                                                            bool bias);

absl::StatusOr<Linear> LoadRowParallel(WeightLoader& weights, std::string_view role,
                                       int64_t layer, int64_t out, int64_t in, Range cols,
                                       bool bias, int tp_rank);

// ys[i] = x · parts[i]^T (+ bias) in one pass over x.
void ForwardGroup(Backend& backend, const Tensor& x, absl::Span<const Linear* const> parts,
                  absl::Span<const Tensor> ys);

}  // namespace strata

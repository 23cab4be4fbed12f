#include "worker/model/layers/linear.h"

#include "absl/container/inlined_vector.h"
#include "common/status.h"

namespace strata {

absl::StatusOr<Linear> LoadColumnParallel(WeightLoader& weights, std::string_view role,
                                          int64_t layer, int64_t out, int64_t in, Range rows,
                                          bool bias) {
  const int64_t parts[] = {out};
  const Range ranges[] = {rows};
  STRATA_ASSIGN_OR_RETURN(std::vector<Linear> l,
                          LoadFusedColumnParallel(weights, role, layer, parts, in, ranges, bias));
  return std::move(l[0]);
}

absl::StatusOr<std::vector<Linear>> LoadFusedColumnParallel(WeightLoader& weights,
                                                            std::string_view role, int64_t layer,
                                                            absl::Span<const int64_t> part_rows,
                                                            int64_t in,
                                                            absl::Span<const Range> rows,
                                                            bool bias) {
  int64_t total = 0;
  for (int64_t p : part_rows) total += p;
  std::vector<Linear> out(part_rows.size());
  int64_t offset = 0;
  for (size_t i = 0; i < part_rows.size(); ++i) {
    const WeightSlice slice = WeightSlice::Rows(offset + rows[i].begin, offset + rows[i].end);
    const bool whole = part_rows.size() == 1 && rows[i].begin == 0 && rows[i].end == total;
    STRATA_ASSIGN_OR_RETURN(out[i].weight,
                            weights.Matrix(role, layer, {total, in}, whole ? WeightSlice{} : slice));
    if (bias) {
      STRATA_ASSIGN_OR_RETURN(out[i].bias, weights.Vector(role, layer, {total}, ".bias",
                                                          whole ? WeightSlice{} : slice));
    }
    offset += part_rows[i];
  }
  return out;
}

absl::StatusOr<Linear> LoadRowParallel(WeightLoader& weights, std::string_view role,
                                       int64_t layer, int64_t out, int64_t in, Range cols,
                                       bool bias, int tp_rank) {
  Linear l;
  const bool whole = cols.begin == 0 && cols.end == in;
  STRATA_ASSIGN_OR_RETURN(
      l.weight, weights.Matrix(role, layer, {out, in},
                               whole ? WeightSlice{} : WeightSlice::Cols(cols.begin, cols.end)));
  if (bias && tp_rank == 0) {
    STRATA_ASSIGN_OR_RETURN(l.bias, weights.Vector(role, layer, {out}, ".bias"));
  }
  return l;
}

void ForwardGroup(Backend& backend, const Tensor& x, absl::Span<const Linear* const> parts,
                  absl::Span<const Tensor> ys) {
  absl::InlinedVector<const Weight*, 4> ws, bs;
  for (const Linear* p : parts) {
    ws.push_back(&p->weight);
    bs.push_back(p->bias_or_null());
  }
  backend.MatMulGroup(x, ws, bs, ys);
}

}  // namespace strata

#include "worker/model/layers/norm.h"

#include "common/status.h"

namespace strata {

absl::StatusOr<Norm> Norm::Load(WeightLoader& weights, std::string_view role, int64_t layer,
                                int64_t dim, const NormSpec& spec) {
  Norm n;
  n.spec_ = spec;
  STRATA_ASSIGN_OR_RETURN(
      n.weight_, weights.Vector(role, layer, {dim}, ".weight", {}, spec.unit_offset ? 1.0f : 0.0f));
  if (spec.bias) {
    STRATA_ASSIGN_OR_RETURN(n.bias_, weights.Vector(role, layer, {dim}, ".bias"));
  }
  return n;
}

}  // namespace strata

#include "worker/model/layers/rope.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace strata {

absl::StatusOr<RopeTables> BuildRopeTables(const ModelConfig& config, WeightLoader& weights,
                                           RopeLayout layout) {
  STRATA_ASSIGN_OR_RETURN(RopeFrequencies f, ComputeRopeFrequencies(config));
  if (weights.gguf_names() && weights.Has("rope_freqs", 0)) {
    STRATA_ASSIGN_OR_RETURN(TensorView factors,
                            weights.HostTensor("rope_freqs", 0, {f.rotary_dim / 2}));
    if (factors.dtype != DType::kF32) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", weights.Name("rope_freqs", 0),
                                                     "' must be f32, is ",
                                                     DTypeName(factors.dtype)));
    }
    ModelConfig unscaled = config;
    unscaled.rope_scaling = RopeScaling{};
    STRATA_ASSIGN_OR_RETURN(f, ComputeRopeFrequencies(unscaled));
    const auto* div = reinterpret_cast<const float*>(factors.data);
    for (size_t i = 0; i < f.inv_freq.size(); ++i) f.inv_freq[i] /= div[i];
  }
  RopeTables t;
  t.rotary_dim = f.rotary_dim;
  t.layout = layout;
  t.mscale = f.mscale;
  t.long_threshold = f.long_threshold;
  STRATA_ASSIGN_OR_RETURN(t.inv_freq, weights.Table(f.inv_freq));
  if (!f.long_inv_freq.empty()) {
    STRATA_ASSIGN_OR_RETURN(t.long_inv_freq, weights.Table(f.long_inv_freq));
  }
  return t;
}

}  // namespace strata

// Norm layers: RMSNorm (optionally with (1 + w) weights, as Gemma's checkpoints store them)
// and LayerNorm (optionally with a bias). Weights are kept in f32.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "worker/model/layer.h"

namespace strata {

struct NormSpec {
  NormKind kind = NormKind::kRms;
  float eps = 1e-6f;
  bool bias = false;         // LayerNorm with a bias
  bool unit_offset = false;  // RMSNorm scales by (1 + w): folded into the weight at load
};

class Norm {
 public:
  Norm() = default;
  // `role`'s weight (and bias) of `dim` values at `layer`.
  static absl::StatusOr<Norm> Load(WeightLoader& weights, std::string_view role, int64_t layer,
                                   int64_t dim, const NormSpec& spec);

  // y = norm(x).   x, y: [rows, dim]; y may be x.
  void Forward(Backend& backend, const Tensor& x, const Tensor& y) const {
    backend.Norm(x, params(), y);
  }
  // residual += delta; y = norm(residual).
  void AddForward(Backend& backend, const Tensor& residual, const Tensor& delta,
                  const Tensor& y) const {
    backend.AddNorm(residual, delta, params(), y);
  }

 private:
  NormParams params() const {
    NormParams p;
    p.kind = spec_.kind;
    p.eps = spec_.eps;
    p.weight = &weight_;
    p.bias = spec_.bias ? &bias_ : nullptr;
    return p;
  }
  NormSpec spec_;
  Weight weight_;
  Weight bias_;
};

}  // namespace strata

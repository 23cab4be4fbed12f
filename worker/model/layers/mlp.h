// The feed-forward block: gated (down(act(gate x) * up x): SwiGLU, GeGLU; gate and up separate
// or fused) or plain (down(act(up x)): Phi-2, Falcon), optional biases. gate/up are
// column-parallel, down row-parallel; the block ends in the layer's all-reduce unless the
// caller sums more into it first (an MoE block's shared experts).
// Weight roles: <prefix>gate, <prefix>up, <prefix>down, or <prefix>gate_up fused (gate first).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "worker/model/layer.h"
#include "worker/model/layers/linear.h"

namespace strata {

struct MlpSpec {
  int64_t hidden = 0;
  int64_t ffn = 0;  // full width (split across the TP group)
  Activation activation = Activation::kSilu;
  bool gated = true;
  bool fused_gate_up = false;
  bool bias = false;
  std::string prefix = "w_";  // role prefix: "w_" (MLP), "shared_" (shared experts)
};

class Mlp final : public FeedForwardBlock {
 public:
  static absl::StatusOr<std::unique_ptr<Mlp>> Load(LayerBuilder& b, const MlpSpec& spec);

  // out = mlp(h) on this rank's columns (FeedForwardBlock).
  absl::Status Forward(StepContext& ctx, const Tensor& h, const Tensor& out,
                       bool reduce) const override;

 private:
  MlpSpec spec_;
  int64_t ffn_ = 0;  // on this rank
  std::optional<Linear> gate_;
  Linear up_, down_;
};

}  // namespace strata

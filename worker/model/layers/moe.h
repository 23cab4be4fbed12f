// Mixture-of-experts block: a replicated router (kept in its stored dtype, logits in f32),
// top-k routing (softmax or sigmoid scores, optional renormalisation, grouped routing, a routed
// scaling factor, DeepSeek-V3's correction bias), the routed experts as grouped matmuls
// (Backend::MoeFfn), and optional always-on shared experts (a gated MLP).
//
// Under tensor parallelism the experts are either split by their FFN width on every rank or,
// with expert parallelism, spread whole across the ranks (tp_split.h). Every rank holds every
// token of the step, so dispatch needs no communication: each rank runs its experts (or its
// slices of them) on the tokens routed there, and the block's single all-reduce combines the
// partial outputs, shared experts included.
// Weight roles: "router", "router_bias" (correction bias), "exp_gate", "exp_up", "exp_down"
// (per expert `$1`, or stacked [experts, ...]), and the shared MLP's "shared_*".
#pragma once

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "worker/model/layer.h"
#include "worker/model/layers/mlp.h"

namespace strata {

struct MoeSpec {
  int64_t hidden = 0;
  int64_t expert_ffn = 0;
  MoeRouting routing;           // num_experts, top_k, scoring, renormalisation, groups, scale
  bool correction_bias = false;  // load "router_bias" into routing.correction_bias
  Activation activation = Activation::kSilu;
  int64_t shared_ffn = 0;        // 0: no shared experts
};

class MoeBlock final : public FeedForwardBlock {
 public:
  static absl::StatusOr<std::unique_ptr<MoeBlock>> Load(LayerBuilder& b, const MoeSpec& spec);

  // out = moe(h) (FeedForwardBlock).
  absl::Status Forward(StepContext& ctx, const Tensor& h, const Tensor& out,
                       bool reduce) const override;

 private:
  MoeSpec spec_;
  Weight router_;  // [num_experts, hidden]
  Weight correction_;
  ExpertWeights experts_;
  std::unique_ptr<Mlp> shared_;
};

}  // namespace strata

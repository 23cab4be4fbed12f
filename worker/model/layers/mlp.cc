#include "worker/model/layers/mlp.h"

#include "common/status.h"

namespace strata {

absl::StatusOr<std::unique_ptr<Mlp>> Mlp::Load(LayerBuilder& b, const MlpSpec& spec) {
  auto owned = std::make_unique<Mlp>();
  Mlp& m = *owned;
  m.spec_ = spec;
  const Range cols = b.tp.Split(spec.ffn);
  m.ffn_ = cols.size();
  const std::string& p = spec.prefix;
  if (spec.gated && spec.fused_gate_up) {
    const int64_t parts[] = {spec.ffn, spec.ffn};
    const Range rows[] = {cols, cols};
    STRATA_ASSIGN_OR_RETURN(std::vector<Linear> gu,
                            LoadFusedColumnParallel(b.weights, p + "gate_up", b.layer, parts,
                                                    spec.hidden, rows, spec.bias));
    m.gate_ = std::move(gu[0]);
    m.up_ = std::move(gu[1]);
  } else {
    if (spec.gated) {
      STRATA_ASSIGN_OR_RETURN(m.gate_, LoadColumnParallel(b.weights, p + "gate", b.layer,
                                                          spec.ffn, spec.hidden, cols, spec.bias));
    }
    STRATA_ASSIGN_OR_RETURN(m.up_, LoadColumnParallel(b.weights, p + "up", b.layer, spec.ffn,
                                                      spec.hidden, cols, spec.bias));
  }
  STRATA_ASSIGN_OR_RETURN(m.down_, LoadRowParallel(b.weights, p + "down", b.layer, spec.hidden,
                                                   spec.ffn, cols, spec.bias, b.tp.rank));
  b.ws.Reserve("mlp_up", m.ffn_);
  if (spec.gated) b.ws.Reserve("mlp_gate", m.ffn_);
  return owned;
}

absl::Status Mlp::Forward(StepContext& ctx, const Tensor& h, const Tensor& out,
                          bool reduce) const {
  Backend& be = ctx.backend;
  const int64_t t = ctx.tokens();
  const Tensor up = ctx.ws.Get("mlp_up", {t, ffn_});
  if (gate_) {
    const Tensor gate = ctx.ws.Get("mlp_gate", {t, ffn_});
    const Linear* parts[] = {&*gate_, &up_};
    const Tensor outs[] = {gate, up};
    ForwardGroup(be, h, parts, outs);
    be.GatedActivation(gate, up, spec_.activation, up);
  } else {
    up_.Forward(be, h, up);
    be.Activate(up, spec_.activation);
  }
  down_.Forward(be, up, out);  // a partial sum over this rank's columns
  return reduce ? ctx.AllReduce(out) : absl::OkStatus();
}

}  // namespace strata

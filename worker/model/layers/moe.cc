#include "worker/model/layers/moe.h"

#include "common/status.h"

namespace strata {

absl::StatusOr<std::unique_ptr<MoeBlock>> MoeBlock::Load(LayerBuilder& b, const MoeSpec& spec) {
  auto m = std::unique_ptr<MoeBlock>(new MoeBlock());
  m->spec_ = spec;
  const int64_t e = spec.routing.num_experts, l = b.layer;
  STRATA_ASSIGN_OR_RETURN(m->router_, b.weights.Matrix("router", l, {e, spec.hidden}, {},
                                                       WeightLoader::MatrixKind::kRouter));
  if (spec.correction_bias) {
    STRATA_ASSIGN_OR_RETURN(m->correction_, b.weights.Vector("router_bias", l, {e}));
  }
  const Range ffn = b.tp.ExpertFfn(spec.expert_ffn);
  const bool whole = ffn.size() == spec.expert_ffn;
  const WeightSlice rows = whole ? WeightSlice{} : WeightSlice::Rows(ffn.begin, ffn.end);
  const WeightSlice cols = whole ? WeightSlice{} : WeightSlice::Cols(ffn.begin, ffn.end);
  m->experts_.expert_begin = b.tp.experts.begin;
  m->experts_.activation = spec.activation;
  for (int64_t x = b.tp.experts.begin; x < b.tp.experts.end; ++x) {
    const Shape up_shape = {spec.expert_ffn, spec.hidden}, down_shape = {spec.hidden, spec.expert_ffn};
    STRATA_ASSIGN_OR_RETURN(Weight gate, b.weights.ExpertMatrix("exp_gate", l, x, e, up_shape, rows));
    STRATA_ASSIGN_OR_RETURN(Weight up, b.weights.ExpertMatrix("exp_up", l, x, e, up_shape, rows));
    STRATA_ASSIGN_OR_RETURN(Weight down,
                            b.weights.ExpertMatrix("exp_down", l, x, e, down_shape, cols));
    m->experts_.gate.push_back(std::move(gate));
    m->experts_.up.push_back(std::move(up));
    m->experts_.down.push_back(std::move(down));
  }
  if (spec.shared_ffn > 0) {
    MlpSpec shared;
    shared.hidden = spec.hidden;
    shared.ffn = spec.shared_ffn;
    shared.activation = spec.activation;
    shared.prefix = "shared_";
    STRATA_ASSIGN_OR_RETURN(m->shared_, Mlp::Load(b, shared));
    b.ws.Reserve("moe_shared", spec.hidden);
  }
  b.ws.Reserve("moe_logits", DType::kF32, e);
  b.ws.Reserve("moe_ids", DType::kI32, spec.routing.top_k);
  b.ws.Reserve("moe_weights", DType::kF32, spec.routing.top_k);
  return m;
}

absl::Status MoeBlock::Forward(StepContext& ctx, const Tensor& h, const Tensor& out,
                               bool reduce) const {
  Backend& be = ctx.backend;
  const int64_t t = ctx.tokens(), k = spec_.routing.top_k;
  const Tensor logits = ctx.ws.Get("moe_logits", {t, spec_.routing.num_experts});
  const Tensor ids = ctx.ws.Get("moe_ids", {t, k});
  const Tensor weights = ctx.ws.Get("moe_weights", {t, k});
  be.MatMul(h, router_, nullptr, logits);
  MoeRouting routing = spec_.routing;
  if (spec_.correction_bias) routing.correction_bias = &correction_;
  be.MoeRoute(logits, routing, ids, weights);
  be.MoeFfn(h, ids, weights, experts_, out);  // this rank's experts (or slices): a partial sum
  if (shared_) {
    const Tensor shared = ctx.ws.Get("moe_shared", {t, spec_.hidden});
    STRATA_RETURN_IF_ERROR(shared_->Forward(ctx, h, shared, /*reduce=*/false));
    be.Add(out, shared);
  }
  return reduce ? ctx.AllReduce(out) : absl::OkStatus();
}

}  // namespace strata

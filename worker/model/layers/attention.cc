#include "worker/model/layers/attention.h"

#include <cmath>

#include "common/status.h"

namespace strata {

absl::StatusOr<std::unique_ptr<Attention>> Attention::Load(LayerBuilder& b,
                                                           const AttentionSpec& spec) {
  auto a = std::unique_ptr<Attention>(new Attention());
  a->spec_ = spec;
  a->rope_ = &b.rope;
  a->tp_ = b.tp;
  a->heads_ = b.tp.q_heads.size();
  a->kv_heads_ = b.tp.kv_heads.size();
  const int64_t hd = spec.head_dim, l = b.layer;
  const Range q_rows{b.tp.q_heads.begin * hd, b.tp.q_heads.end * hd};
  const Range kv_rows{b.tp.kv_heads.begin * hd, b.tp.kv_heads.end * hd};
  const int64_t q_dim = spec.num_heads * hd, kv_dim = spec.num_kv_heads * hd;
  if (spec.fused_qkv) {
    const int64_t parts[] = {q_dim, kv_dim, kv_dim};
    const Range rows[] = {q_rows, kv_rows, kv_rows};
    STRATA_ASSIGN_OR_RETURN(a->qkv_, LoadFusedColumnParallel(b.weights, "wqkv", l, parts,
                                                             spec.hidden, rows, spec.qkv_bias));
  } else {
    struct Part {
      const char* role;
      int64_t out;
      Range rows;
    };
    for (const Part& p : {Part{"wq", q_dim, q_rows}, Part{"wk", kv_dim, kv_rows},
                          Part{"wv", kv_dim, kv_rows}}) {
      STRATA_ASSIGN_OR_RETURN(Linear lin, LoadColumnParallel(b.weights, p.role, l, p.out,
                                                             spec.hidden, p.rows, spec.qkv_bias));
      a->qkv_.push_back(std::move(lin));
    }
  }
  STRATA_ASSIGN_OR_RETURN(a->wo_, LoadRowParallel(b.weights, "wo", l, spec.hidden, q_dim, q_rows,
                                                  spec.o_bias, b.tp.rank));
  if (spec.qk_norm == AttentionSpec::QkNorm::kPerHead) {
    STRATA_ASSIGN_OR_RETURN(a->q_norm_, Norm::Load(b.weights, "q_norm", l, hd, spec.qk_norm_spec));
    STRATA_ASSIGN_OR_RETURN(a->k_norm_, Norm::Load(b.weights, "k_norm", l, hd, spec.qk_norm_spec));
  } else if (spec.qk_norm == AttentionSpec::QkNorm::kWhole) {
    STRATA_ASSIGN_OR_RETURN(a->q_norm_,
                            Norm::Load(b.weights, "q_norm", l, q_dim, spec.qk_norm_spec));
    STRATA_ASSIGN_OR_RETURN(a->k_norm_,
                            Norm::Load(b.weights, "k_norm", l, kv_dim, spec.qk_norm_spec));
    if (b.tp.size > 1) {
      for (int r = 0; r < b.tp.size; ++r) {
        STRATA_ASSIGN_OR_RETURN(TpLayout other, MakeTpLayout(b.config, r, b.tp.size,
                                                             b.tp.expert_parallel));
        a->kv_ranges_.push_back(other.kv_heads);
      }
      b.ws.Reserve("qk_gather", b.tp.size * a->heads_ * hd);
      b.ws.Reserve("qk_full", q_dim);
      ReserveCommSlots(b.ws, b.tp.size, a->heads_ * hd, b.tp.size * a->heads_ * hd);
    }
  }
  b.ws.Reserve("q", a->heads_ * hd);
  b.ws.Reserve("k", a->kv_heads_ * hd);
  b.ws.Reserve("v", a->kv_heads_ * hd);
  b.ws.Reserve("attn", a->heads_ * hd);
  return a;
}

KvSpec Attention::kv_spec() const {
  return KvSpec{kv_heads_, spec_.head_dim, spec_.head_dim, true};
}

absl::Status Attention::NormQk(StepContext& ctx, const Norm& norm, const Tensor& x,
                               bool is_k) const {
  const int64_t t = ctx.tokens(), hd = spec_.head_dim;
  if (spec_.qk_norm == AttentionSpec::QkNorm::kPerHead) {
    const Tensor heads = x.Reshape({x.NumElements() / hd, hd});
    norm.Forward(ctx.backend, heads, heads);
    return absl::OkStatus();
  }
  if (ctx.tp_size == 1) {
    norm.Forward(ctx.backend, x, x);
    return absl::OkStatus();
  }
  // The norm spans every rank's heads: gather them, norm the whole projection, keep ours.
  const int64_t local = x.Cols();
  const int64_t full = (is_k ? spec_.num_kv_heads : spec_.num_heads) * hd;
  const Tensor gathered = ctx.ws.Get("qk_gather", {ctx.tp_size, t, local});
  const Tensor whole = ctx.ws.Get("qk_full", {t, full});
  STRATA_RETURN_IF_ERROR(ctx.AllGather(x, gathered));
  for (int r = 0; r < ctx.tp_size; ++r) {
    const int64_t begin = is_k ? kv_ranges_[r].begin * hd : r * local;
    const Tensor part = gathered.SliceRows(r * t, (r + 1) * t);
    ctx.backend.CopyColumns(part, 0, whole, begin, local);
  }
  norm.Forward(ctx.backend, whole, whole);
  const int64_t mine = is_k ? tp_.kv_heads.begin * hd : tp_.rank * local;
  ctx.backend.CopyColumns(whole, mine, x, 0, local);
  return absl::OkStatus();
}

absl::Status Attention::Forward(StepContext& ctx, const KvLayer& kv, const Tensor& h,
                                const Tensor& out, bool reduce) const {
  Backend& be = ctx.backend;
  const int64_t t = ctx.tokens(), hd = spec_.head_dim;
  const Tensor q = ctx.ws.Get("q", {t, heads_ * hd});
  const Tensor k = ctx.ws.Get("k", {t, kv_heads_ * hd});
  const Tensor v = ctx.ws.Get("v", {t, kv_heads_ * hd});
  const Tensor attn = ctx.ws.Get("attn", {t, heads_ * hd});
  const Linear* parts[] = {&qkv_[0], &qkv_[1], &qkv_[2]};
  const Tensor outs[] = {q, k, v};
  ForwardGroup(be, h, parts, outs);
  if (q_norm_) {
    STRATA_RETURN_IF_ERROR(NormQk(ctx, *q_norm_, q, false));
    STRATA_RETURN_IF_ERROR(NormQk(ctx, *k_norm_, k, true));
  }
  const Tensor q3 = q.Reshape({t, heads_, hd});
  const Tensor k3 = k.Reshape({t, kv_heads_, hd});
  if (spec_.rope) {
    const RopeParams rope = rope_->Params();
    be.Rope(ctx.plan, q3, rope);
    be.Rope(ctx.plan, k3, rope);
  }
  be.WriteKv(ctx.plan, k3, v.Reshape({t, kv_heads_, hd}), kv);
  AttentionParams p;
  p.num_heads = heads_;
  p.num_kv_heads = kv_heads_;
  p.head_dim = hd;
  p.v_head_dim = hd;
  p.scale = spec_.scale > 0.0f ? spec_.scale : 1.0f / std::sqrt(static_cast<float>(hd));
  p.softcap = spec_.softcap;
  p.sliding_window = spec_.sliding_window;
  be.Attention(ctx.plan, q3, kv, p, attn.Reshape({t, heads_, hd}));
  wo_.Forward(be, attn, out);  // a partial sum over this rank's heads
  return reduce ? ctx.AllReduce(out) : absl::OkStatus();
}

}  // namespace strata

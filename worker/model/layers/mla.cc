#include "worker/model/layers/mla.h"

#include "common/status.h"

namespace strata {

absl::StatusOr<std::unique_ptr<LatentAttention>> LatentAttention::Load(LayerBuilder& b,
                                                                       float scale) {
  const ModelConfig& c = b.config;
  auto a = std::unique_ptr<LatentAttention>(new LatentAttention());
  const MlaConfig& m = c.mla;
  a->m_ = m;
  a->scale_ = scale;
  a->rope_ = &b.rope;
  a->heads_ = b.tp.q_heads.size();
  const int64_t l = b.layer, hidden = c.hidden_size, heads = c.num_heads;
  const int64_t qk = m.qk_nope_head_dim + m.qk_rope_head_dim;
  const int64_t L = m.kv_lora_rank, R = m.qk_rope_head_dim, nope = m.qk_nope_head_dim;
  const Range q_rows{b.tp.q_heads.begin * qk, b.tp.q_heads.end * qk};
  const NormSpec norm = [&] {
    NormSpec n;
    n.eps = static_cast<float>(c.rms_norm_eps);
    return n;
  }();
  if (m.q_lora_rank > 0) {
    STRATA_ASSIGN_OR_RETURN(a->wq_a_, LoadColumnParallel(b.weights, "wq_a", l, m.q_lora_rank,
                                                         hidden, {0, m.q_lora_rank}, false));
    STRATA_ASSIGN_OR_RETURN(a->q_a_norm_, Norm::Load(b.weights, "q_a_norm", l, m.q_lora_rank, norm));
    STRATA_ASSIGN_OR_RETURN(a->wq_b_, LoadColumnParallel(b.weights, "wq_b", l, heads * qk,
                                                         m.q_lora_rank, q_rows, false));
    b.ws.Reserve("mla_qa", m.q_lora_rank);
  } else {
    STRATA_ASSIGN_OR_RETURN(a->wq_, LoadColumnParallel(b.weights, "wq", l, heads * qk, hidden,
                                                       q_rows, false));
  }
  STRATA_ASSIGN_OR_RETURN(a->wkv_a_,
                          LoadColumnParallel(b.weights, "wkv_a", l, L + R, hidden, {0, L + R}, false));
  STRATA_ASSIGN_OR_RETURN(a->kv_a_norm_, Norm::Load(b.weights, "kv_a_norm", l, L, norm));
  // kv_b_proj: per head, nope rows of W_UK then v_head_dim rows of W_UV, over the latent.
  const int64_t per_head = nope + m.v_head_dim;
  const Shape kv_b = {heads * per_head, L};
  for (int64_t h = b.tp.q_heads.begin; h < b.tp.q_heads.end; ++h) {
    STRATA_ASSIGN_OR_RETURN(Weight uk_t, b.weights.TransposedRows("wkv_b", l, kv_b, h * per_head,
                                                                  h * per_head + nope));
    STRATA_ASSIGN_OR_RETURN(Weight uv, b.weights.Matrix("wkv_b", l, kv_b,
                                                        WeightSlice::Rows(h * per_head + nope,
                                                                          (h + 1) * per_head)));
    a->uk_t_.push_back(std::move(uk_t));
    a->uv_.push_back(std::move(uv));
  }
  const Range v_cols{b.tp.q_heads.begin * m.v_head_dim, b.tp.q_heads.end * m.v_head_dim};
  STRATA_ASSIGN_OR_RETURN(a->wo_, LoadRowParallel(b.weights, "wo", l, hidden,
                                                  heads * m.v_head_dim, v_cols, false, b.tp.rank));
  b.ws.Reserve("q", a->heads_ * qk);
  b.ws.Reserve("mla_kva", L + R);
  b.ws.Reserve("mla_c", L);
  b.ws.Reserve("mla_kpe", R);
  b.ws.Reserve("mla_k", L + R);
  b.ws.Reserve("mla_qnope", nope);
  b.ws.Reserve("mla_qlat", L);
  b.ws.Reserve("mla_qpe", a->heads_ * R);
  b.ws.Reserve("mla_q", a->heads_ * (L + R));
  b.ws.Reserve("mla_o", a->heads_ * L);
  b.ws.Reserve("mla_v", m.v_head_dim);
  b.ws.Reserve("attn", a->heads_ * m.v_head_dim);
  return a;
}

KvSpec LatentAttention::kv_spec() const {
  return KvSpec{1, m_.kv_lora_rank + m_.qk_rope_head_dim, m_.kv_lora_rank, /*store_v=*/false};
}

absl::Status LatentAttention::Forward(StepContext& ctx, const KvLayer& kv, const Tensor& h,
                                      const Tensor& out, bool reduce) const {
  Backend& be = ctx.backend;
  const int64_t t = ctx.tokens(), H = heads_;
  const int64_t L = m_.kv_lora_rank, R = m_.qk_rope_head_dim, nope = m_.qk_nope_head_dim;
  const int64_t qk = nope + R, V = m_.v_head_dim;
  const RopeParams rope = rope_->Params();

  // Queries: [t, H * (nope + rope)].
  const Tensor q = ctx.ws.Get("q", {t, H * qk});
  if (wq_a_) {
    const Tensor qa = ctx.ws.Get("mla_qa", {t, m_.q_lora_rank});
    wq_a_->Forward(be, h, qa);
    q_a_norm_->Forward(be, qa, qa);
    wq_b_->Forward(be, qa, q);
  } else {
    wq_->Forward(be, h, q);
  }
  // The cache row [c; k_pe] of each token.
  const Tensor kva = ctx.ws.Get("mla_kva", {t, L + R});
  wkv_a_.Forward(be, h, kva);
  const Tensor c = ctx.ws.Get("mla_c", {t, L}), kpe = ctx.ws.Get("mla_kpe", {t, R});
  be.CopyColumns(kva, 0, c, 0, L);
  be.CopyColumns(kva, L, kpe, 0, R);
  kv_a_norm_.Forward(be, c, c);
  be.Rope(ctx.plan, kpe.Reshape({t, 1, R}), rope);
  const Tensor k = ctx.ws.Get("mla_k", {t, L + R});
  be.CopyColumns(c, 0, k, 0, L);
  be.CopyColumns(kpe, 0, k, L, R);
  be.WriteKv(ctx.plan, k.Reshape({t, 1, L + R}), k.Reshape({t, 1, L + R}), kv);

  // Queries in latent space: per head [W_UK^T q_nope; rotated q_pe].
  const Tensor qpe = ctx.ws.Get("mla_qpe", {t, H * R});
  for (int64_t j = 0; j < H; ++j) be.CopyColumns(q, j * qk + nope, qpe, j * R, R);
  be.Rope(ctx.plan, qpe.Reshape({t, H, R}), rope);
  const Tensor qlat_all = ctx.ws.Get("mla_q", {t, H * (L + R)});
  const Tensor qnope = ctx.ws.Get("mla_qnope", {t, nope}), qlat = ctx.ws.Get("mla_qlat", {t, L});
  for (int64_t j = 0; j < H; ++j) {
    be.CopyColumns(q, j * qk, qnope, 0, nope);
    be.MatMul(qnope, uk_t_[j], nullptr, qlat);
    be.CopyColumns(qlat, 0, qlat_all, j * (L + R), L);
    be.CopyColumns(qpe, j * R, qlat_all, j * (L + R) + L, R);
  }
  AttentionParams p;
  p.num_heads = H;
  p.num_kv_heads = 1;
  p.head_dim = L + R;
  p.v_head_dim = L;
  p.scale = scale_;
  const Tensor olat = ctx.ws.Get("mla_o", {t, H * L});
  be.Attention(ctx.plan, qlat_all.Reshape({t, H, L + R}), kv, p, olat.Reshape({t, H, L}));

  // Values out of latent space, per head, then o_proj.
  const Tensor attn = ctx.ws.Get("attn", {t, H * V}), v = ctx.ws.Get("mla_v", {t, V});
  for (int64_t j = 0; j < H; ++j) {
    be.CopyColumns(olat, j * L, qlat, 0, L);
    be.MatMul(qlat, uv_[j], nullptr, v);
    be.CopyColumns(v, 0, attn, j * V, V);
  }
  wo_.Forward(be, attn, out);  // a partial sum over this rank's heads
  return reduce ? ctx.AllReduce(out) : absl::OkStatus();
}

}  // namespace strata

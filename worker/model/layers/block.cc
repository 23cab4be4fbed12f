#include "worker/model/layers/block.h"

#include "common/status.h"

namespace strata {

absl::StatusOr<std::unique_ptr<DecoderLayer>> DecoderBlock::Build(
    LayerBuilder& b, const BlockSpec& spec, std::unique_ptr<AttentionBlock> attention,
    std::unique_ptr<FeedForwardBlock> ffn) {
  auto block = std::unique_ptr<DecoderBlock>(new DecoderBlock());
  block->spec_ = spec;
  block->attention_ = std::move(attention);
  block->ffn_ = std::move(ffn);
  const int64_t hidden = b.config.hidden_size, l = b.layer;
  auto load = [&](bool wanted, const char* role, std::optional<Norm>& out) -> absl::Status {
    if (!wanted) return absl::OkStatus();
    STRATA_ASSIGN_OR_RETURN(out, Norm::Load(b.weights, role, l, hidden, spec.norm));
    return absl::OkStatus();
  };
  STRATA_RETURN_IF_ERROR(load(spec.attn_pre_norm, "attn_norm", block->attn_norm_));
  STRATA_RETURN_IF_ERROR(load(spec.attn_post_norm, "attn_post_norm", block->attn_post_norm_));
  STRATA_RETURN_IF_ERROR(load(!spec.parallel && spec.ffn_pre_norm, "ffn_norm", block->ffn_norm_));
  STRATA_RETURN_IF_ERROR(
      load(!spec.parallel && spec.ffn_post_norm, "ffn_post_norm", block->ffn_post_norm_));
  b.ws.Reserve("h", hidden);
  b.ws.Reserve("o", hidden);
  if (spec.parallel) b.ws.Reserve("o2", hidden);
  return std::unique_ptr<DecoderLayer>(std::move(block));
}

absl::Status DecoderBlock::Forward(StepContext& ctx, const KvLayer& kv, const Tensor& x) {
  Backend& be = ctx.backend;
  const Tensor h = ctx.ws.Get("h", x.shape), o = ctx.ws.Get("o", x.shape);
  if (spec_.parallel) {
    attn_norm_->Forward(be, x, h);
    const Tensor m = ctx.ws.Get("o2", x.shape);
    STRATA_RETURN_IF_ERROR(attention_->Forward(ctx, kv, h, o, /*reduce=*/false));
    STRATA_RETURN_IF_ERROR(ffn_->Forward(ctx, h, m, /*reduce=*/false));
    be.Add(o, m);
    STRATA_RETURN_IF_ERROR(ctx.AllReduce(o));
    be.Add(x, o);
    return absl::OkStatus();
  }
  // Attention.
  const Tensor* in = &x;
  if (attn_norm_) {
    attn_norm_->Forward(be, x, h);
    in = &h;
  }
  STRATA_RETURN_IF_ERROR(attention_->Forward(ctx, kv, *in, o, /*reduce=*/true));
  if (attn_post_norm_) attn_post_norm_->Forward(be, o, o);
  // The residual add, fused with the next norm when it follows directly.
  in = &x;
  if (ffn_norm_) {
    ffn_norm_->AddForward(be, x, o, h);
    in = &h;
  } else {
    be.Add(x, o);
  }
  STRATA_RETURN_IF_ERROR(ffn_->Forward(ctx, *in, o, /*reduce=*/true));
  if (ffn_post_norm_) ffn_post_norm_->Forward(be, o, o);
  be.Add(x, o);
  return absl::OkStatus();
}

}  // namespace strata

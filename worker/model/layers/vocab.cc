#include "worker/model/layers/vocab.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace strata {
namespace {

WeightSlice VocabRows(const ModelConfig& c, const TpLayout& tp) {
  if (tp.vocab.begin == 0 && tp.vocab.end == c.vocab_size) return {};
  return WeightSlice::Rows(tp.vocab.begin, tp.vocab.end);
}

}  // namespace

absl::StatusOr<VocabEmbedding> VocabEmbedding::Load(WeightLoader& weights,
                                                    const ModelConfig& config,
                                                    const TpLayout& tp, float scale) {
  VocabEmbedding e;
  e.vocab_begin_ = tp.vocab.begin;
  e.scale_ = scale;
  STRATA_ASSIGN_OR_RETURN(e.table_,
                          weights.Matrix("embed", 0, {config.vocab_size, config.hidden_size},
                                         VocabRows(config, tp),
                                         WeightLoader::MatrixKind::kEmbedding));
  return e;
}

absl::Status VocabEmbedding::Forward(StepContext& ctx, const Tensor& out) const {
  ctx.backend.Embedding(ctx.plan, table_, vocab_begin_, scale_, out);
  return ctx.AllReduce(out);  // each token's row comes from the one rank holding its id
}

absl::StatusOr<LmHead> LmHead::Load(WeightLoader& weights, const ModelConfig& config,
                                    const TpLayout& tp, const LmHeadSpec& spec,
                                    const VocabEmbedding* embedding, Workspace& ws) {
  LmHead h;
  h.spec_ = spec;
  h.tp_ = tp;
  h.vocab_ = config.vocab_size;
  const WeightSlice rows = VocabRows(config, tp);
  if (spec.tied && embedding != nullptr) {
    h.table_ = embedding->table();
  } else {
    STRATA_ASSIGN_OR_RETURN(h.table_, weights.Matrix(spec.tied ? "embed" : "lm_head", 0,
                                                     {config.vocab_size, config.hidden_size},
                                                     rows, WeightLoader::MatrixKind::kEmbedding));
  }
  if (spec.bias) {
    STRATA_ASSIGN_OR_RETURN(h.bias_,
                            weights.Vector("lm_head", 0, {config.vocab_size}, ".bias", rows));
  }
  const int64_t n = spec.max_rows;
  ws.Reserve("logits_local", DType::kF32, tp.vocab_stride, n);
  ws.Reserve("logits", DType::kF32, config.vocab_size, n);
  if (tp.size > 1) ws.Reserve("logits_gather", DType::kF32, tp.size * tp.vocab_stride, n);
  return h;
}

absl::StatusOr<Tensor> LmHead::Forward(StepContext& ctx, const Tensor& h) const {
  Backend& be = ctx.backend;
  const int64_t rows = h.Rows(), width = tp_.vocab.size();
  if (rows > spec_.max_rows) {
    return absl::InvalidArgumentError(absl::StrCat("step: ", rows,
                                                   " rows of logits, this shard was loaded for "
                                                   "at most ", spec_.max_rows));
  }
  const Tensor logits = ctx.ws.Get("logits", {rows, vocab_});
  if (tp_.size == 1) {
    be.MatMul(h, table_, bias_.empty() ? nullptr : &bias_, logits);
    if (spec_.softcap > 0.0f) be.Softcap(logits, spec_.softcap);
    return logits;
  }
  // The rank's slice, padded to vocab_stride per row block so every rank sends as much.
  const Tensor local = ctx.ws.Get("logits_local", {rows * tp_.vocab_stride});
  const Tensor mine = MakeTensor(DType::kF32, {rows, width}, local.data);
  be.MatMul(h, table_, bias_.empty() ? nullptr : &bias_, mine);
  if (spec_.softcap > 0.0f) be.Softcap(mine, spec_.softcap);
  const Tensor gathered = ctx.ws.Get("logits_gather", {ctx.tp_size, rows * tp_.vocab_stride});
  STRATA_RETURN_IF_ERROR(ctx.AllGather(local, gathered));
  for (int q = 0; q < ctx.tp_size; ++q) {
    const int64_t begin = q * tp_.vocab_stride;
    const int64_t w = std::min(vocab_, begin + tp_.vocab_stride) - begin;
    const Tensor part = MakeTensor(DType::kF32, {rows, w},
                                   gathered.data + q * rows * tp_.vocab_stride * sizeof(float));
    be.CopyColumns(part, 0, logits, begin, w);
  }
  return logits;
}

}  // namespace strata

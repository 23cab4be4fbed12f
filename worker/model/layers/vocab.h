// The vocabulary ends of a decoder, both vocab-parallel: each TP rank holds a slice of
// ceil(vocab / tp) rows (tp_split.h).
//
// VocabEmbedding: tokens inside the rank's slice embed (times an optional scale, Gemma's
// sqrt(hidden)), the others give zeros, and an all-reduce completes every row.
// LmHead: the rank's slice of the logits, optionally soft-capped, all-gathered and reassembled
// into full f32 logits on every rank of the group. Tied heads reuse the embedding table.
// Weight roles: "embed", "lm_head".
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "worker/model/layer.h"

namespace strata {

class VocabEmbedding {
 public:
  static absl::StatusOr<VocabEmbedding> Load(WeightLoader& weights, const ModelConfig& config,
                                             const TpLayout& tp, float scale);

  // out: [tokens, hidden] = the embeddings of the step's tokens.
  absl::Status Forward(StepContext& ctx, const Tensor& out) const;
  const Weight& table() const { return table_; }

 private:
  Weight table_;  // [vocab rows of this rank, hidden]
  int64_t vocab_begin_ = 0;
  float scale_ = 1.0f;
};

struct LmHeadSpec {
  bool tied = false;    // the embedding table is the head
  bool bias = false;    // Phi-2
  float softcap = 0.0f;  // > 0: logits = softcap * tanh(logits / softcap) (Gemma 2)
  int64_t max_rows = 0;  // rows of logits per step at most
};

class LmHead {
 public:
  // `embedding` is this stage's embedding when it has one (reused when tied).
  static absl::StatusOr<LmHead> Load(WeightLoader& weights, const ModelConfig& config,
                                     const TpLayout& tp, const LmHeadSpec& spec,
                                     const VocabEmbedding* embedding, Workspace& ws);

  // h: [rows, hidden] -> full logits [rows, vocab] f32 (a workspace view).
  absl::StatusOr<Tensor> Forward(StepContext& ctx, const Tensor& h) const;
  // Bytes of the table this head reads per step (the embedding's when tied).
  int64_t bytes() const { return table_.Bytes(); }

 private:
  LmHeadSpec spec_;
  TpLayout tp_;
  int64_t vocab_ = 0;
  Weight table_;  // [vocab rows of this rank, hidden]
  Weight bias_;
};

}  // namespace strata

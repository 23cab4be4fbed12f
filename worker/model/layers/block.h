// DecoderBlock: one decoder layer assembled from an attention block, a feed-forward block and
// the norms around them. The families differ in where the norms sit, and that is all this
// recipe needs to know:
//
//   pre-norm (Llama, Mistral, Qwen, Phi-3, Mixtral, DeepSeek):
//       x += attn(norm(x));                x += ffn(norm(x))
//   sandwich (Gemma 2): pre- and post-norms
//       x += post(attn(norm(x)));          x += post(ffn(norm(x)))
//   post-norm only (OLMo 2):
//       x += post(attn(x));                x += post(ffn(x))
//   parallel (Phi-2, Falcon): one norm, both blocks on it, one all-reduce for the two
//       h = norm(x);  x += attn(h) + ffn(h)
//
// Norm roles: "attn_norm", "attn_post_norm", "ffn_norm", "ffn_post_norm".
#pragma once

#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "worker/model/layer.h"
#include "worker/model/layers/norm.h"

namespace strata {

struct BlockSpec {
  NormSpec norm;
  bool parallel = false;        // attention and ffn both read attn_norm(x)
  bool attn_pre_norm = true;
  bool attn_post_norm = false;
  bool ffn_pre_norm = true;     // (not with parallel)
  bool ffn_post_norm = false;   // (not with parallel)
};

class DecoderBlock final : public DecoderLayer {
 public:
  static absl::StatusOr<std::unique_ptr<DecoderLayer>> Build(
      LayerBuilder& b, const BlockSpec& spec, std::unique_ptr<AttentionBlock> attention,
      std::unique_ptr<FeedForwardBlock> ffn);

  absl::Status Forward(StepContext& ctx, const KvLayer& kv, const Tensor& x) override;
  KvSpec kv_spec() const override { return attention_->kv_spec(); }

 private:
  BlockSpec spec_;
  std::unique_ptr<AttentionBlock> attention_;
  std::unique_ptr<FeedForwardBlock> ffn_;
  std::optional<Norm> attn_norm_, attn_post_norm_, ffn_norm_, ffn_post_norm_;
};

}  // namespace strata

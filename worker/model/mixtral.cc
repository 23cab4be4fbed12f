// Mixtral: Llama's attention with a sparse mixture-of-experts MLP in every layer: a softmax
// router over the experts, the top-k (2) renormalised, each expert a SwiGLU MLP. Experts are
// split by TP (each rank a slice of every expert) or, with expert parallelism, spread whole
// across the ranks. Hugging Face stores each expert's w1/w3/w2; GGUF (`llama` with experts)
// stacks them into one [experts, ...] tensor per role.
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/model/families.h"
#include "worker/model/layers/attention.h"
#include "worker/model/layers/moe.h"

namespace strata {
namespace {

class MixtralLayer final : public DecoderLayer {
 public:
  absl::Status Forward(StepContext& ctx, const KvLayer& kv, const Tensor& x) override {
    const Tensor h = ctx.ws.Get("h", x.shape), o = ctx.ws.Get("o", x.shape);
    attn_norm_.Forward(ctx.backend, x, h);
    STRATA_RETURN_IF_ERROR(attn_->Forward(ctx, kv, h, o));
    ffn_norm_.AddForward(ctx.backend, x, o, h);
    STRATA_RETURN_IF_ERROR(moe_->Forward(ctx, h, o));
    ctx.backend.Add(x, o);
    return absl::OkStatus();
  }
  KvSpec kv_spec() const override { return attn_->kv_spec(); }

  Norm attn_norm_, ffn_norm_;
  std::unique_ptr<Attention> attn_;
  std::unique_ptr<MoeBlock> moe_;
};

const NameTable& MixtralNames() {
  static const NameTable names = LlamaNames().With({
      {"router", {"model.layers.$0.block_sparse_moe.gate", "blk.$0.ffn_gate_inp"}},
      {"exp_gate", {"model.layers.$0.block_sparse_moe.experts.$1.w1", "blk.$0.ffn_gate_exps"}},
      {"exp_up", {"model.layers.$0.block_sparse_moe.experts.$1.w3", "blk.$0.ffn_up_exps"}},
      {"exp_down", {"model.layers.$0.block_sparse_moe.experts.$1.w2", "blk.$0.ffn_down_exps"}},
  });
  return names;
}

absl::StatusOr<std::unique_ptr<DecoderLayer>> BuildMixtralLayer(LayerBuilder& b) {
  const ModelConfig& c = b.config;
  auto layer = std::make_unique<MixtralLayer>();
  STRATA_ASSIGN_OR_RETURN(layer->attn_norm_, Norm::Load(b.weights, "attn_norm", b.layer,
                                                        c.hidden_size, RmsNormSpec(c)));
  AttentionSpec attn;
  attn.hidden = c.hidden_size;
  attn.num_heads = c.num_heads;
  attn.num_kv_heads = c.num_kv_heads;
  attn.head_dim = c.head_dim;
  attn.sliding_window = c.sliding_window;
  STRATA_ASSIGN_OR_RETURN(layer->attn_, Attention::Load(b, attn));
  STRATA_ASSIGN_OR_RETURN(layer->ffn_norm_, Norm::Load(b.weights, "ffn_norm", b.layer,
                                                       c.hidden_size, RmsNormSpec(c)));
  MoeSpec moe;
  moe.hidden = c.hidden_size;
  moe.expert_ffn = c.moe.expert_intermediate_size;
  moe.routing.num_experts = c.moe.num_experts;
  moe.routing.top_k = c.moe.experts_per_token;
  moe.routing.scoring = MoeRouting::Scoring::kSoftmax;
  moe.routing.renormalize = true;
  STRATA_ASSIGN_OR_RETURN(layer->moe_, MoeBlock::Load(b, moe));
  b.ws.Reserve("o", c.hidden_size);
  return layer;
}

absl::Status CheckMixtral(const ModelConfig& c) {
  if (!c.IsMoe()) {
    return absl::InvalidArgumentError(absl::StrCat(c.architecture, " without experts"));
  }
  return absl::OkStatus();
}

}  // namespace

const Family& MixtralFamily() {
  static const Family family = {
      .name = "mixtral",
      .architectures = {"MixtralForCausalLM"},
      .gguf_architectures = {"llama"},
      .names = &MixtralNames(),
      .check = &CheckMixtral,
      .decoder = &LlamaDecoder,
      .build_layer = &BuildMixtralLayer,
  };
  return family;
}

}  // namespace strata

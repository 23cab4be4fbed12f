// DeepSeek-V2 (and V2-Lite): pre-norm blocks of multi-head latent attention (layers/mla.h:
// the compressed latent KV cache) and, after the first first_k_dense_replace dense layers, a
// mixture of experts: softmax router, greedy or group-limited top-k, the routed experts'
// weights renormalised (norm_topk_prob) or scaled by routed_scaling_factor, plus always-on
// shared experts. RoPE pairs are interleaved in both formats.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/model/families.h"
#include "worker/model/layers/mla.h"
#include "worker/model/layers/moe.h"

namespace strata {
namespace {

const NameTable& DeepseekNames() {
  static const NameTable names = LlamaNames().With({
      {"wq_a", {"model.layers.$0.self_attn.q_a_proj", "blk.$0.attn_q_a"}},
      {"q_a_norm", {"model.layers.$0.self_attn.q_a_layernorm", "blk.$0.attn_q_a_norm"}},
      {"wq_b", {"model.layers.$0.self_attn.q_b_proj", "blk.$0.attn_q_b"}},
      {"wkv_a", {"model.layers.$0.self_attn.kv_a_proj_with_mqa", "blk.$0.attn_kv_a_mqa"}},
      {"kv_a_norm", {"model.layers.$0.self_attn.kv_a_layernorm", "blk.$0.attn_kv_a_norm"}},
      {"wkv_b", {"model.layers.$0.self_attn.kv_b_proj", "blk.$0.attn_kv_b"}},
      {"router", {"model.layers.$0.mlp.gate", "blk.$0.ffn_gate_inp"}},
      {"exp_gate", {"model.layers.$0.mlp.experts.$1.gate_proj", "blk.$0.ffn_gate_exps"}},
      {"exp_up", {"model.layers.$0.mlp.experts.$1.up_proj", "blk.$0.ffn_up_exps"}},
      {"exp_down", {"model.layers.$0.mlp.experts.$1.down_proj", "blk.$0.ffn_down_exps"}},
      {"shared_gate", {"model.layers.$0.mlp.shared_experts.gate_proj", "blk.$0.ffn_gate_shexp"}},
      {"shared_up", {"model.layers.$0.mlp.shared_experts.up_proj", "blk.$0.ffn_up_shexp"}},
      {"shared_down", {"model.layers.$0.mlp.shared_experts.down_proj", "blk.$0.ffn_down_shexp"}},
  });
  return names;
}

// qk_head_dim^-1/2, times mscale^2 under YaRN scaling (DeepSeek's softmax_scale).
float SoftmaxScale(const ModelConfig& c) {
  double scale = 1.0 / std::sqrt(static_cast<double>(c.mla.qk_nope_head_dim + c.mla.qk_rope_head_dim));
  const RopeScaling& s = c.rope_scaling;
  if (s.type == RopeScalingType::kYarn && s.mscale_all_dim > 0 && s.factor > 1) {
    const double mscale = 0.1 * s.mscale_all_dim * std::log(s.factor) + 1.0;
    scale *= mscale * mscale;
  }
  return static_cast<float>(scale);
}

absl::StatusOr<std::unique_ptr<FeedForwardBlock>> BuildFfn(LayerBuilder& b) {
  const ModelConfig& c = b.config;
  if (b.layer < c.moe.first_dense_layers) {
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Mlp> mlp, Mlp::Load(b, LlamaMlp(c)));
    return std::unique_ptr<FeedForwardBlock>(std::move(mlp));
  }
  MoeSpec moe;
  moe.hidden = c.hidden_size;
  moe.expert_ffn = c.moe.expert_intermediate_size;
  moe.routing.num_experts = c.moe.num_experts;
  moe.routing.top_k = c.moe.experts_per_token;
  moe.routing.scoring = MoeRouting::Scoring::kSoftmax;
  moe.routing.num_groups = c.moe.num_groups;
  moe.routing.topk_groups = c.moe.topk_groups;
  // DeepSeek-V2 renormalises the chosen weights or scales them, never both.
  moe.routing.renormalize = c.moe.norm_topk_prob && c.moe.experts_per_token > 1;
  moe.routing.routed_scale =
      moe.routing.renormalize ? 1.0f : static_cast<float>(c.moe.routed_scaling_factor);
  moe.shared_ffn = c.moe.shared_intermediate_size();
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<MoeBlock> experts, MoeBlock::Load(b, moe));
  return std::unique_ptr<FeedForwardBlock>(std::move(experts));
}

absl::StatusOr<std::unique_ptr<DecoderLayer>> BuildDeepseekLayer(LayerBuilder& b) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<LatentAttention> attn,
                          LatentAttention::Load(b, SoftmaxScale(b.config)));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<FeedForwardBlock> ffn, BuildFfn(b));
  return DecoderBlock::Build(b, PreNormBlock(b.config), std::move(attn), std::move(ffn));
}

absl::Status CheckDeepseek(const ModelConfig& c) {
  if (!c.IsMla() || !c.IsMoe()) {
    return absl::InvalidArgumentError(absl::StrCat(
        c.architecture, " needs multi-head latent attention (kv_lora_rank) and experts"));
  }
  if (c.moe.num_groups < 1 || c.moe.num_experts % c.moe.num_groups != 0 ||
      c.moe.topk_groups < 1 || c.moe.topk_groups > c.moe.num_groups) {
    return absl::InvalidArgumentError(absl::StrCat(
        "n_group ", c.moe.num_groups, " must divide the ", c.moe.num_experts,
        " experts, and topk_group ", c.moe.topk_groups, " be between 1 and it"));
  }
  STRATA_RETURN_IF_ERROR(ActivationOf(c).status());
  return CheckNothingUnsupported(c);
}

}  // namespace

const Family& DeepseekV2Family() {
  static const Family family = {
      .name = "deepseek2",
      .architectures = {"DeepseekV2ForCausalLM"},
      .gguf_architectures = {"deepseek2"},
      .names = &DeepseekNames(),
      .check = &CheckDeepseek,
      .decoder = &LlamaDecoder,
      .build_layer = &BuildDeepseekLayer,
  };
  return family;
}

}  // namespace strata

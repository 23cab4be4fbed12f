// Mixtral: Llama's attention and pre-norm blocks with a sparse mixture-of-experts MLP in every
// layer: a softmax router over the experts, the top-k (2) renormalised, each expert a SwiGLU
// MLP. Experts are split by TP (each rank a slice of every expert) or, with expert
// parallelism, spread whole across the ranks. Hugging Face stores each expert's w1/w3/w2; GGUF
// (`llama` with experts) stacks them into one [experts, ...] tensor per role.
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/model/families.h"
#include "worker/model/layers/moe.h"

namespace strata {
namespace {

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
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Attention> attn, Attention::Load(b, LlamaAttention(c)));
  MoeSpec moe;
  moe.hidden = c.hidden_size;
  moe.expert_ffn = c.moe.expert_intermediate_size;
  moe.routing.num_experts = c.moe.num_experts;
  moe.routing.top_k = c.moe.experts_per_token;
  moe.routing.scoring = MoeRouting::Scoring::kSoftmax;
  moe.routing.renormalize = true;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<MoeBlock> experts, MoeBlock::Load(b, moe));
  return DecoderBlock::Build(b, PreNormBlock(c), std::move(attn), std::move(experts));
}

absl::Status CheckMixtral(const ModelConfig& c) {
  if (!c.IsMoe()) return absl::InvalidArgumentError(absl::StrCat(c.architecture, " without experts"));
  return CheckNothingUnsupported(c);
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

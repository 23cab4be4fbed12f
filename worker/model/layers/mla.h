// Multi-head latent attention (DeepSeek-V2), in its absorbed form: the KV cache holds one row
// per token — the normalised latent c (kv_lora_rank values) followed by the rotary key k_pe
// (qk_rope_head_dim values) — shared by every head, instead of per-head keys and values.
//
//   queries:  q = q_b(norm(q_a(h)))  (or q_proj(h)), per head [q_nope; q_pe]
//   keys:     [c; k_pe] = kv_a(h); c = norm(c); k_pe and q_pe rotated (interleaved pairs)
//   scores:   q_nope·(W_UK c) + q_pe·k_pe = [W_UK^T q_nope; q_pe] · [c; k_pe]
//   values:   sum_s p(s) W_UV c(s) = W_UV (sum_s p(s) c(s))
//
// so attention runs as multi-query attention over the cache rows with head dim
// kv_lora_rank + qk_rope_head_dim, its values being the first kv_lora_rank values of each row
// (KvSpec.store_v = false); W_UK (transposed) and W_UV are the rank's heads' rows of kv_b_proj.
// Under tensor parallelism heads split; the latent path is replicated on every rank.
// Weight roles: "wq" or "wq_a", "q_a_norm", "wq_b"; "wkv_a", "kv_a_norm", "wkv_b"; "wo".
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/model/layer.h"
#include "worker/model/layers/linear.h"
#include "worker/model/layers/norm.h"

namespace strata {

class LatentAttention final : public AttentionBlock {
 public:
  // `scale`: on q·k (qk_head_dim^-1/2, times YaRN's mscale^2 when scaled).
  static absl::StatusOr<std::unique_ptr<LatentAttention>> Load(LayerBuilder& b, float scale);

  absl::Status Forward(StepContext& ctx, const KvLayer& kv, const Tensor& h, const Tensor& out,
                       bool reduce) const override;
  KvSpec kv_spec() const override;

 private:
  MlaConfig m_;
  int64_t heads_ = 0;  // on this rank
  float scale_ = 1.0f;
  const RopeTables* rope_ = nullptr;
  std::optional<Linear> wq_, wq_a_, wq_b_;
  std::optional<Norm> q_a_norm_;
  Linear wkv_a_;
  Norm kv_a_norm_;
  std::vector<Weight> uk_t_;  // per local head: W_UK^T [kv_lora, nope]
  std::vector<Weight> uv_;    // per local head: W_UV [v_head_dim, kv_lora]
  Linear wo_;
};

}  // namespace strata

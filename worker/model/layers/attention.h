// Self-attention: q/k/v projections (separate or fused, optional biases), optional q/k norms
// (per head, or over the whole projection), RoPE (every variant of the runner's tables),
// paged KV write and attention (GQA, per-layer sliding window, softcap, scale override), and
// the row-parallel output projection ending in the layer's all-reduce.
//
// Under tensor parallelism the rank holds its query heads and the KV heads of their groups
// (tp_split.h); a rank whose KV head is replicated computes and caches it like its peers.
// Weight roles: "wq", "wk", "wv" (or "wqkv" fused), "wo", "q_norm", "k_norm".
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/model/layer.h"
#include "worker/model/layers/linear.h"
#include "worker/model/layers/norm.h"

namespace strata {

struct AttentionSpec {
  enum class QkNorm : uint8_t {
    kNone,
    kPerHead,  // RMSNorm over each head's head_dim values (Qwen3, Gemma 3)
    kWhole,    // over the whole q / k projection (OLMo 2)
  };
  int64_t hidden = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  bool fused_qkv = false;
  bool qkv_bias = false;
  bool o_bias = false;
  QkNorm qk_norm = QkNorm::kNone;
  NormSpec qk_norm_spec;
  bool rope = true;
  float scale = 0.0f;          // on q·k; 0: 1 / sqrt(head_dim)
  float softcap = 0.0f;        // > 0: scores = softcap * tanh(scores / softcap)
  int64_t sliding_window = 0;  // > 0: this layer sees the last `sliding_window` positions
};

class Attention final : public AttentionBlock {
 public:
  static absl::StatusOr<std::unique_ptr<Attention>> Load(LayerBuilder& b,
                                                         const AttentionSpec& spec);

  // out = attention(h) (AttentionBlock).
  absl::Status Forward(StepContext& ctx, const KvLayer& kv, const Tensor& h, const Tensor& out,
                       bool reduce) const override;
  KvSpec kv_spec() const override;

 private:
  // Norms q or k ([tokens, heads * head_dim] of this rank) as the spec says.
  absl::Status NormQk(StepContext& ctx, const Norm& norm, const Tensor& x, bool is_k) const;

  AttentionSpec spec_;
  const RopeTables* rope_ = nullptr;
  TpLayout tp_;
  int64_t heads_ = 0;     // on this rank
  int64_t kv_heads_ = 0;  // on this rank
  std::vector<Linear> qkv_;  // q, k, v parts
  Linear wo_;
  std::optional<Norm> q_norm_, k_norm_;
  std::vector<Range> kv_ranges_;  // kWhole under TP: each rank's KV heads
};

}  // namespace strata

// The layer library's common ground: what a layer sees while it is built (LayerBuilder) and
// while it runs a step (StepContext), and the interface of one decoder layer.
//
// A family (family.h) is a table of weight names plus a recipe that composes the library's
// layers (norm.h, linear.h, attention.h, mlp.h, moe.h) into a DecoderLayer; the decoder
// (decoder.h) adds the embedding, the final norm and the lm_head around them.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "common/model_config.h"
#include "worker/backend/backend.h"
#include "worker/comm/communicator.h"
#include "worker/model/kv_cache.h"
#include "worker/model/tp_split.h"
#include "worker/model/weight_loader.h"
#include "worker/model/workspace.h"

namespace strata {

// RoPE tables shared by every layer of a runner (layers/rope.h builds them).
struct RopeTables {
  Weight inv_freq;       // [rotary_dim / 2] f32
  Weight long_inv_freq;  // LongRoPE only
  int64_t rotary_dim = 0;
  RopeLayout layout = RopeLayout::kHalfSplit;
  float mscale = 1.0f;
  int64_t long_threshold = 0;

  RopeParams Params() const {
    RopeParams p;
    p.inv_freq = &inv_freq;
    p.rotary_dim = rotary_dim;
    p.layout = layout;
    p.mscale = mscale;
    if (!long_inv_freq.empty()) {
      p.long_inv_freq = &long_inv_freq;
      p.long_threshold = long_threshold;
      p.long_mscale = mscale;
    }
    return p;
  }
};

// What a layer's constructor gets.
struct LayerBuilder {
  const ModelConfig& config;
  const TpLayout& tp;
  WeightLoader& weights;
  Workspace& ws;
  const RopeTables& rope;
  int64_t layer = 0;  // global index
};

// What a layer sees while running one step.
struct StepContext {
  Backend& backend;
  const StepPlan& plan;
  const Workspace& ws;
  Communicator* tp_comm = nullptr;  // nullptr without tensor parallelism
  int tp_size = 1;

  int64_t tokens() const { return plan.num_tokens; }
  // Sums `t` over the tensor-parallel group; nothing without one. Activations that are not
  // f32 (bf16 on a GPU) are widened to f32 in the "comm_in_f32" slot, summed there and rounded
  // back once (ReserveCommSlots sizes it).
  absl::Status AllReduce(const Tensor& t);
  // out: [tp_size, in elements] = every rank's `in`, rank order (through "comm_in_f32" and
  // "comm_out_f32" when not f32).
  absl::Status AllGather(const Tensor& in, const Tensor& out);
};

// Reserves the f32 staging slots StepContext's collectives use for activations that are not
// f32: `per_row` values per token in, `gather_per_row` values per token out of a gather.
// Nothing with f32 activations or without tensor parallelism.
void ReserveCommSlots(Workspace& ws, int tp_size, int64_t per_row, int64_t gather_per_row = 0);

// Token mixing (self-attention of some kind). `out` is this rank's partial sum unless
// `reduce`, when it is summed over the TP group.   h, out: [tokens, hidden]
class AttentionBlock {
 public:
  virtual ~AttentionBlock() = default;
  virtual absl::Status Forward(StepContext& ctx, const KvLayer& kv, const Tensor& h,
                               const Tensor& out, bool reduce) const = 0;
  // What the layer keeps per token in its KV cache on this rank.
  virtual KvSpec kv_spec() const = 0;
};

// The per-token feed-forward part (an MLP, a mixture of experts). Same contract on `out`.
class FeedForwardBlock {
 public:
  virtual ~FeedForwardBlock() = default;
  virtual absl::Status Forward(StepContext& ctx, const Tensor& h, const Tensor& out,
                               bool reduce) const = 0;
};

class DecoderLayer {
 public:
  virtual ~DecoderLayer() = default;
  // Runs the layer on the residual stream `x` ([tokens, hidden], updated in place) with the
  // layer's KV cache `kv`.
  virtual absl::Status Forward(StepContext& ctx, const KvLayer& kv, const Tensor& x) = 0;
  // What the layer keeps per token in its KV cache on this rank.
  virtual KvSpec kv_spec() const = 0;
};

}  // namespace strata

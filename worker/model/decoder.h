// Decoder: the ModelRunner every family shares. It builds a family's layers for its layer
// range and TP rank, adds the embedding (first stage), the final norm and lm_head (last stage)
// and the paged KV cache, and runs steps:
//
//   x = embed(tokens)            (or the previous stage's hidden states)
//   for each layer: layer(x)     (the family's recipe; x is the residual stream)
//   last stage: logits = lm_head(final_norm(x[logit rows]))
//
// The same build runs in planning mode (no backend, nothing read): that is how the shard
// planner learns what each rank holds (footprint.h).
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/formats/weight_source.h"
#include "worker/model/family.h"
#include "worker/model/model_runner.h"

namespace strata {

// Everything a decoder is built from.
struct ModelContext {
  ModelConfig config;
  std::shared_ptr<const WeightSource> weights;  // kept alive by the runner (views into it)
  bool gguf_names = false;
  const Family* family = nullptr;
  ModelLoadOptions options;  // layer_end resolved
};

// The built parts of one rank's shard: loaded (with a backend) or only counted (planning).
struct DecoderParts {
  TpLayout tp;
  // Layers keep pointers to these two: they live on the heap, where moves leave them.
  std::unique_ptr<Workspace> ws;
  std::unique_ptr<RopeTables> rope;
  std::optional<VocabEmbedding> embed;
  std::vector<std::unique_ptr<DecoderLayer>> layers;
  std::vector<KvSpec> kv_specs;  // one per layer
  std::optional<Norm> final_norm;
  std::optional<LmHead> head;
  // Bytes per part: [0] before the layers (embedding, tables), [1 + i] layer i of the range,
  // [1 + layers] after them (final norm, lm_head).
  std::vector<int64_t> part_bytes;
  int64_t expert_bytes = 0;  // of which routed experts'
};

// Builds the parts through `weights` (loading or planning).
absl::StatusOr<DecoderParts> BuildDecoderParts(const ModelContext& context, WeightLoader& weights,
                                               DType activation_dtype);

// Loads a runner on `backend`.
absl::StatusOr<std::unique_ptr<ModelRunner>> BuildDecoder(ModelContext context, Backend& backend);

}  // namespace strata

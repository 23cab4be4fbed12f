#include "worker/model/footprint.h"

#include "common/status.h"

namespace strata {
namespace {

// Builds layers [begin, end) of rank 0 in planning mode.
absl::StatusOr<DecoderParts> Plan(const ModelContext& context, const FootprintOptions& options,
                                  int tp, int64_t begin, int64_t end) {
  ModelContext c;
  c.config = context.config;
  c.gguf_names = context.gguf_names;
  c.family = context.family;
  c.options.layer_begin = begin;
  c.options.layer_end = end;
  c.options.tp_rank = 0;
  c.options.tp_size = tp;
  c.options.expert_parallel = options.expert_parallel;
  WeightLoader::Options lo;
  lo.gguf_names = context.gguf_names;
  lo.matrix_dtype = options.weight_dtype;
  WeightLoader weights(context.config, context.weights.get(), *context.family->names, lo);
  return BuildDecoderParts(c, weights, DType::kF32);
}

}  // namespace

absl::StatusOr<ModelFootprint> ComputeFootprint(const ModelContext& context,
                                                const FootprintOptions& options) {
  const int64_t layers = context.config.num_layers;
  ModelFootprint f;
  f.tp = options.tp;
  f.expert_parallel = options.expert_parallel && context.config.IsMoe();
  STRATA_ASSIGN_OR_RETURN(DecoderParts all, Plan(context, options, options.tp, 0, layers));
  f.first_bytes = all.part_bytes.front();
  f.layer_bytes.assign(all.part_bytes.begin() + 1, all.part_bytes.end() - 1);
  f.last_bytes_with_embedding = all.part_bytes.back();
  for (const KvSpec& kv : all.kv_specs) {
    f.kv_elements_per_token.push_back(kv.ElementsPerToken());
    f.kv_rows_per_token.push_back(kv.RowsPerToken());
  }
  STRATA_ASSIGN_OR_RETURN(DecoderParts last, Plan(context, options, options.tp, layers - 1, layers));
  f.last_bytes_alone = last.part_bytes.back();
  if (options.tp == 1) {
    for (int64_t b : all.part_bytes) f.total_bytes += b;
  } else {
    STRATA_ASSIGN_OR_RETURN(DecoderParts one, Plan(context, options, 1, 0, layers));
    for (int64_t b : one.part_bytes) f.total_bytes += b;
  }
  return f;
}

}  // namespace strata

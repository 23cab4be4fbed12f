#include "worker/model/decoder.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/comm/communicator.h"
#include "worker/model/layers/rope.h"

namespace strata {
namespace {

class Decoder final : public ModelRunner {
 public:
  Decoder(ModelContext context, Backend& backend, DecoderParts parts,
          std::unique_ptr<KvCache> kv)
      : context_(std::move(context)), backend_(backend), parts_(std::move(parts)),
        kv_(std::move(kv)) {
    const int64_t total = [&] {
      int64_t b = 0;
      for (int64_t p : parts_.part_bytes) b += p;
      return b;
    }();
    weight_bytes_ = total;
    // A one-token decode step reads every weight but the embedding table (only its token's
    // row), unless that table is also this stage's lm_head, and of the routed experts only the
    // top-k chosen in each layer.
    const ModelConfig& c = context_.config;
    const bool table_is_head = parts_.head && parts_.embed && c.tie_word_embeddings;
    decode_weight_bytes_ =
        total - (parts_.embed && !table_is_head ? parts_.embed->table().Bytes() : 0);
    if (c.IsMoe()) {
      decode_weight_bytes_ -= parts_.expert_bytes -
                              parts_.expert_bytes * c.moe.experts_per_token / c.moe.num_experts;
    }
    // Collectives queued on the backend's stream: every wait for the stream goes through the
    // communicator's, bounded by its timeout (a dead peer would stall the stream forever).
    const ModelLoadOptions& o = context_.options;
    if (o.tp_size > 1 && o.comm->stream() != nullptr) {
      backend_.SetStreamWait([comm = o.comm] { return comm->Synchronize(); });
      waits_on_comm_ = true;
    }
  }
  ~Decoder() override {
    if (!waits_on_comm_) return;
    // What a failed step left queued, waited for while the wait is still bounded.
    (void)backend_.Sync();
    backend_.SetStreamWait(nullptr);
  }

  const ModelConfig& config() const override { return context_.config; }
  Backend& backend() const override { return backend_; }
  int64_t layer_begin() const override { return context_.options.layer_begin; }
  int64_t layer_end() const override { return context_.options.layer_end; }
  int64_t kv_blocks() const override { return kv_->num_blocks(); }
  int64_t kv_block_size() const override { return kv_->block_size(); }
  int64_t max_step_tokens() const override { return context_.options.max_step_tokens; }
  int64_t max_logit_rows() const override { return context_.options.max_logit_rows; }
  int64_t weight_bytes() const override { return weight_bytes_; }
  int64_t decode_weight_bytes() const override { return decode_weight_bytes_; }

  Tensor HiddenInput(int64_t tokens) const override {
    return parts_.ws->Get("x", {tokens, context_.config.hidden_size});
  }

  absl::StatusOr<Tensor> Forward(const StepPlan& plan) override;
  absl::Status RecordGraphs();

 private:
  // Queues the step's ops; `out` is the view Forward returns.
  absl::Status Queue(const StepPlan& plan, Tensor& out);

  ModelContext context_;
  Backend& backend_;
  DecoderParts parts_;
  std::unique_ptr<KvCache> kv_;
  int64_t weight_bytes_ = 0;
  int64_t decode_weight_bytes_ = 0;
  bool waits_on_comm_ = false;  // the backend's waits go through the TP communicator's
  absl::flat_hash_map<int64_t, Tensor> graph_outputs_;  // by graph_batch: the recorded output
};

absl::StatusOr<Tensor> Decoder::Forward(const StepPlan& plan) {
  const ModelLoadOptions& o = context_.options;
  const int64_t t = plan.num_tokens, rows = plan.num_logit_rows;
  if (t < 1 || t > o.max_step_tokens || rows > o.max_logit_rows) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step: ", t, " tokens and ", rows, " rows of logits; this shard was loaded for 1 to ",
        o.max_step_tokens, " tokens and at most ", o.max_logit_rows, " rows"));
  }
  Tensor out;
  if (plan.graph_batch > 0) {  // a padded decode step: its output's first rows are the batch's
    Tensor& recorded = graph_outputs_[plan.graph_batch];
    STRATA_RETURN_IF_ERROR(
        backend_.RunGraph(plan.graph_batch, [&] { return Queue(plan, recorded); }));
    out = recorded.SliceRows(0, plan.batch_seqs);
  } else {
    STRATA_RETURN_IF_ERROR(Queue(plan, out));
  }
  STRATA_RETURN_IF_ERROR(backend_.Sync());
  return out;
}

absl::Status Decoder::Queue(const StepPlan& plan, Tensor& out) {
  const ModelConfig& c = context_.config;
  const ModelLoadOptions& o = context_.options;
  const int64_t rows = plan.num_logit_rows;
  StepContext ctx{backend_, plan, *parts_.ws, o.tp_size > 1 ? o.comm : nullptr, o.tp_size};
  const Tensor x = HiddenInput(plan.num_tokens);
  if (parts_.embed) STRATA_RETURN_IF_ERROR(parts_.embed->Forward(ctx, x));
  for (size_t i = 0; i < parts_.layers.size(); ++i) {
    STRATA_RETURN_IF_ERROR(parts_.layers[i]->Forward(ctx, kv_->Layer(i), x));
  }
  if (!parts_.head) {
    out = x;
    return absl::OkStatus();
  }
  if (rows == 0) {  // a prompt chunk that samples nothing
    out = parts_.ws->Get("logits", {0, c.vocab_size});
    return absl::OkStatus();
  }
  const Tensor h = parts_.ws->Get("h", {rows, c.hidden_size});
  backend_.GatherLogitRows(plan, x, h);
  parts_.final_norm->Forward(backend_, h, h);
  STRATA_ASSIGN_OR_RETURN(out, parts_.head->Forward(ctx, h));
  return absl::OkStatus();
}

// A decode step of `seqs` sequences for each size the backend pads decode steps to, run once
// and recorded (RunGraph) at load, so that serving records nothing; the largest first, so its
// run grows whatever scratch the others need before any is recorded. The sequences are padding
// to the backend (no K/V stored); each reads one cached token of block 0.
absl::Status Decoder::RecordGraphs() {
  const std::vector<int64_t> sizes = backend_.GraphBatches();
  for (auto it = sizes.rbegin(); it != sizes.rend(); ++it) {
    const int64_t seqs = *it;
    StepBatch batch;
    const int32_t block = 0;
    for (int64_t s = 0; s < seqs; ++s) {
      batch.AddSequence({0}, 0, {&block, 1}, static_cast<int32_t>(kv_->block_size()), false);
    }
    std::fill(batch.slot_mapping.begin(), batch.slot_mapping.end(), -1);
    STRATA_ASSIGN_OR_RETURN(const StepPlan* plan, backend_.PlanStep(batch));
    if (absl::StatusOr<Tensor> out = Forward(*plan); !out.ok()) {
      return absl::Status(out.status().code(),
                          absl::StrCat("the decode step of ", seqs, " sequences run at load: ",
                                       out.status().message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DecoderParts> BuildDecoderParts(const ModelContext& context, WeightLoader& weights,
                                               DType activation_dtype) {
  const ModelConfig& c = context.config;
  const ModelLoadOptions& o = context.options;
  const Family& family = *context.family;
  DecoderParts p;
  STRATA_ASSIGN_OR_RETURN(p.tp, MakeTpLayout(c, o.tp_rank, o.tp_size, o.expert_parallel));
  p.ws = std::make_unique<Workspace>(activation_dtype);
  const DecoderSpec spec = family.decoder(c, context.gguf_names);
  const bool first = o.layer_begin == 0, last = o.layer_end == c.num_layers;

  int64_t counted = 0;
  auto close_part = [&] {
    p.part_bytes.push_back(weights.bytes() - counted);
    counted = weights.bytes();
  };
  STRATA_ASSIGN_OR_RETURN(RopeTables rope, BuildRopeTables(c, weights, c.rope_layout));
  p.rope = std::make_unique<RopeTables>(std::move(rope));
  if (first) {
    STRATA_ASSIGN_OR_RETURN(p.embed, VocabEmbedding::Load(weights, c, p.tp, spec.embed_scale));
  }
  close_part();
  for (int64_t l = o.layer_begin; l < o.layer_end; ++l) {
    LayerBuilder b{c, p.tp, weights, *p.ws, *p.rope, l};
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<DecoderLayer> layer, family.build_layer(b));
    p.kv_specs.push_back(layer->kv_spec());
    p.layers.push_back(std::move(layer));
    close_part();
  }
  if (last) {
    STRATA_ASSIGN_OR_RETURN(p.final_norm,
                            Norm::Load(weights, "final_norm", 0, c.hidden_size, spec.final_norm));
    LmHeadSpec head;
    head.tied = c.tie_word_embeddings;
    head.bias = spec.lm_head_bias;
    head.softcap = spec.final_softcap;
    head.max_rows = o.max_logit_rows;
    STRATA_ASSIGN_OR_RETURN(p.head, LmHead::Load(weights, c, p.tp, head,
                                                 p.embed ? &*p.embed : nullptr, *p.ws));
  }
  close_part();
  p.expert_bytes = weights.expert_bytes();
  p.ws->Reserve("x", c.hidden_size);
  p.ws->Reserve("h", c.hidden_size);
  ReserveCommSlots(*p.ws, p.tp.size, c.hidden_size);  // the all-reduces of [tokens, hidden]
  return p;
}

namespace {

// The largest step a runner built with `o` takes: its tokens and logit rows, a context of
// every cache block (or of the model's trained positions, if fewer), its rank's query heads.
StepLimits MaxStep(const ModelConfig& c, const ModelLoadOptions& o, const DecoderParts& parts) {
  StepLimits limits;
  limits.max_tokens = o.max_step_tokens;
  limits.max_logit_rows = o.max_logit_rows;
  limits.block_size = o.kv_block_size;
  limits.max_blocks_per_seq = o.kv_blocks;
  if (c.max_position_embeddings > 0) {
    limits.max_blocks_per_seq = std::min(
        limits.max_blocks_per_seq, (c.max_position_embeddings + o.kv_block_size - 1) / o.kv_block_size);
  }
  limits.vocab = parts.head && o.tp_rank == 0 ? c.vocab_size : 0;  // TP rank 0 samples
  limits.num_heads = parts.tp.q_heads.size();
  for (const KvSpec& kv : parts.kv_specs) {
    const AttentionShape shape{kv.head_dim, kv.v_head_dim, !kv.store_v};
    if (std::find(limits.attention.begin(), limits.attention.end(), shape) ==
        limits.attention.end()) {
      limits.attention.push_back(shape);
    }
  }
  if (c.IsMoe()) {
    limits.hidden = c.hidden_size;
    limits.expert_ffn = c.moe.expert_intermediate_size;  // a rank's slice is no wider
    limits.num_experts = c.moe.num_experts;
    limits.top_k = c.moe.experts_per_token;
  }
  // A step's ops never wait for the host with collectives (if any) queued on the backend's
  // stream. A pipeline stage's hand-offs happen around its step (ShardRuntime), not in it.
  const bool queued = o.tp_size == 1 || o.comm->stream() != nullptr;
  limits.max_graph_seqs = queued ? o.max_logit_rows : 0;
  return limits;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRunner>> BuildDecoder(ModelContext context, Backend& backend) {
  const ModelLoadOptions& o = context.options;
  if (o.tp_size > 1) {
    if (o.comm == nullptr || o.comm->world_size() != o.tp_size || o.comm->rank() != o.tp_rank) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor-parallel rank ", o.tp_rank, " of ", o.tp_size,
          " needs a communicator of that rank and size, got ",
          o.comm == nullptr ? std::string("none")
                            : absl::StrCat("rank ", o.comm->rank(), " of ", o.comm->world_size())));
    }
    // Collectives run on the backend's tensors: host memory for Gloo, device memory for NCCL.
    if (o.comm->device_memory() == backend.device().host_memory) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the communicator works on ", o.comm->device_memory() ? "device" : "host",
          " memory, the ", DeviceKindName(backend.device().kind), " backend's tensors are not"));
    }
    // One that only queues its collectives must queue them behind the step's ops.
    if (o.comm->stream() != nullptr && o.comm->stream() != backend.stream()) {
      return absl::InvalidArgumentError(
          "the communicator queues its collectives on a stream that is not the backend's: they "
          "would not wait for the ops that write what they read");
    }
  }
  if (const std::optional<DType> kept = backend.device().weight_dtype;
      kept && o.weight_dtype && *o.weight_dtype != *kept) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights converted to ", DTypeName(*o.weight_dtype), " were asked for; the ",
        DeviceKindName(backend.device().kind), " backend keeps every matrix in ",
        DTypeName(*kept), " (leave the conversion out, or ask for ", DTypeName(*kept), ")"));
  }
  if (o.max_step_tokens < 1 || o.max_logit_rows < 1) {
    return absl::InvalidArgumentError("max_step_tokens and max_logit_rows must be positive");
  }
  WeightLoader::Options lo;
  lo.gguf_names = context.gguf_names;
  lo.matrix_dtype = o.weight_dtype;
  lo.on_progress = o.on_progress;
  WeightLoader weights(*context.weights, backend, *context.family->names, lo);
  STRATA_ASSIGN_OR_RETURN(DecoderParts parts,
                          BuildDecoderParts(context, weights, backend.device().activation_dtype));
  STRATA_RETURN_IF_ERROR(parts.ws->Allocate(backend, o.max_step_tokens));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> kv,
                          KvCache::Create(backend, o.kv_blocks, o.kv_block_size, parts.kv_specs));
  STRATA_RETURN_IF_ERROR(backend.Reserve(MaxStep(context.config, o, parts)));
  auto decoder =
      std::make_unique<Decoder>(std::move(context), backend, std::move(parts), std::move(kv));
  STRATA_RETURN_IF_ERROR(decoder->RecordGraphs());
  return decoder;
}

}  // namespace strata

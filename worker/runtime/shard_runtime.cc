#include "worker/runtime/shard_runtime.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/comm/communicator.h"

namespace strata {
namespace {

// A hand-off tensor's size in 4-byte words (the communicators count floats).
absl::StatusOr<int64_t> HandOffWords(const Tensor& t) {
  if (t.Bytes() % 4 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pipeline hand-off of ", t.Bytes(), " bytes of ", DTypeName(t.dtype),
        " activations: not a whole number of 4-byte words"));
  }
  return t.Bytes() / 4;
}

}  // namespace

ShardRuntime::ShardRuntime(std::unique_ptr<Backend> backend, std::unique_ptr<ModelRunner> runner,
                           StageRole role)
    : backend_(std::move(backend)), runner_(std::move(runner)), role_(role) {}

// The runner's tensors live on the backend: drop it first.
ShardRuntime::~ShardRuntime() { runner_.reset(); }

int ShardRuntime::Release(const std::vector<uint64_t>& seq_ids) {
  int released = 0;
  for (uint64_t id : seq_ids) released += static_cast<int>(sequences_.erase(id));
  return released;
}

absl::Status ShardRuntime::Run(const StepInput& step, StepOutput& out) {
  const ModelConfig& config = runner_->config();
  const int32_t block_size = static_cast<int32_t>(runner_->kv_block_size());
  Release(step.release);
  out = StepOutput{};
  if (step.seqs.empty()) return absl::OkStatus();

  // 1. Build and check everything before touching state.
  StepBatch batch;
  std::vector<std::vector<int32_t>> tables(step.seqs.size());
  std::vector<size_t> sampled;  // index into step.seqs of each sampled sequence
  for (size_t i = 0; i < step.seqs.size(); ++i) {
    const SequenceStepInput& seq = step.seqs[i];
    if (seq.tokens.empty() || seq.num_cached < 0 || seq.num_prompt_tokens < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence ", seq.seq_id,
          ": needs at least one token, and num_cached and num_prompt_tokens >= 0"));
    }
    if (!seq.start) {
      auto it = sequences_.find(seq.seq_id);
      if (it == sequences_.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sequence ", seq.seq_id,
            " continues, but this worker has no block table for it (released, or never "
            "started: set start)"));
      }
      tables[i] = it->second.block_table;
    }
    tables[i].insert(tables[i].end(), seq.new_blocks.begin(), seq.new_blocks.end());
    batch.AddSequence(seq.tokens, seq.num_cached, tables[i], block_size, /*all_logits=*/false);
    if (!seq.sample) {
      batch.logit_rows.pop_back();
      continue;
    }
    if (absl::Status valid = seq.sampling.Validate(config.vocab_size); !valid.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", seq.seq_id, ": ", valid.message()));
    }
    sampled.push_back(i);
  }
  STRATA_RETURN_IF_ERROR(batch.Validate(config.vocab_size, config.max_position_embeddings,
                                        runner_->kv_blocks(), block_size));
  if (batch.num_tokens() > runner_->max_step_tokens() ||
      static_cast<int64_t>(sampled.size()) > runner_->max_logit_rows()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step: ", batch.num_tokens(), " tokens and ", sampled.size(),
        " sampled sequences; this shard takes at most ", runner_->max_step_tokens(),
        " tokens and ", runner_->max_logit_rows(), " sampled sequences per step"));
  }
  for (size_t i = 0; i < step.seqs.size(); ++i) {
    const SequenceStepInput& seq = step.seqs[i];
    SequenceState& state = sequences_[seq.seq_id];
    if (seq.start) state.history.Clear();
    state.block_table = std::move(tables[i]);
    if (!is_sampler()) continue;
    for (size_t t = 0; t < seq.cached_tokens.size(); ++t) {
      state.history.Add(seq.cached_tokens[t], static_cast<int32_t>(t) >= seq.num_prompt_tokens);
    }
    for (size_t t = 0; t < seq.tokens.size(); ++t) {
      state.history.Add(seq.tokens[t],
                        seq.num_cached + static_cast<int32_t>(t) >= seq.num_prompt_tokens);
    }
  }

  // 2-3. Plan, receive, run, send. The hand-off moves the activations' bytes (f32 on a CPU,
  // bf16 on a GPU) in the communicator's memory space: Gloo between CPU stages, NCCL between
  // GPU stages. Send and Recv copy bits (no arithmetic), so bf16 travels as pairs of "floats".
  if (role_.pp_comm != nullptr &&
      role_.pp_comm->device_memory() == backend_->device().host_memory) {
    return absl::FailedPreconditionError(absl::StrCat(
        "pipeline hand-off of activations in ", backend_->device().host_memory ? "host" : "device",
        " memory over a ", role_.pp_comm->device_memory() ? "device" : "host",
        "-memory communicator"));
  }
  STRATA_ASSIGN_OR_RETURN(const StepPlan* plan, backend_->PlanStep(batch));
  if (role_.pp_rank > 0) {
    const Tensor in = runner_->HiddenInput(batch.num_tokens());
    STRATA_ASSIGN_OR_RETURN(const int64_t words, HandOffWords(in));
    STRATA_RETURN_IF_ERROR(role_.pp_comm->Recv(in.As<float>(), words, role_.pp_rank - 1));
  }
  STRATA_ASSIGN_OR_RETURN(Tensor result, runner_->Forward(*plan));
  if (!runner_->is_last_stage()) {
    STRATA_ASSIGN_OR_RETURN(const int64_t words, HandOffWords(result));
    // The communicator reads the tensor outside the backend's queue: its writers must be done.
    STRATA_RETURN_IF_ERROR(backend_->Sync());
    return role_.pp_comm->Send(result.As<float>(), words, role_.pp_rank + 1);
  }
  if (!is_sampler()) return absl::OkStatus();

  // 4. Sample.
  std::vector<SamplingRow> rows(sampled.size());
  for (size_t r = 0; r < sampled.size(); ++r) {
    const SequenceStepInput& seq = step.seqs[sampled[r]];
    rows[r].params = &seq.sampling;
    rows[r].history = &sequences_[seq.seq_id].history;
    rows[r].position = static_cast<uint32_t>(seq.num_cached + seq.tokens.size());
  }
  std::vector<SampledToken> tokens;
  STRATA_RETURN_IF_ERROR(backend_->Sample(result, rows, tokens));
  for (SampledToken& t : tokens) {
    out.tokens.push_back(t.token);
    out.logprobs.push_back(std::move(t.logprobs));
  }
  if (step.return_logits && result.NumElements() > 0) {  // no rows: nothing to copy (the
    // empty vector's null data is no memcpy target: found by worker_step_fuzz under UBSan)
    out.logits.resize(result.NumElements());
    backend_->CopyToHost(result, out.logits.data());
    STRATA_RETURN_IF_ERROR(backend_->Sync());
  }
  return absl::OkStatus();
}

}  // namespace strata

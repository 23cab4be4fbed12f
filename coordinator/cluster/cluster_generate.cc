#include "coordinator/cluster/cluster_generate.h"

#include <algorithm>
#include <chrono>
#include <deque>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

struct Sequence {
  std::vector<int32_t> next;    // tokens of its next step
  int32_t cached = 0;
  std::vector<int32_t> blocks;  // its whole block table, sent with the first step
  bool done = false;
};

struct InFlight {
  ClusterExecutor::Ticket ticket = 0;
  int group = 0;
  std::vector<size_t> members;  // sequence indices in the step, in order
};

}  // namespace

absl::StatusOr<ClusterGenerateResult> GenerateOnCluster(
    ClusterExecutor& executor, const std::vector<std::vector<int32_t>>& prompts,
    const ClusterGenerateOptions& options) {
  if (prompts.empty()) return absl::InvalidArgumentError("no prompts");
  STRATA_RETURN_IF_ERROR(options.sampling.Validate());
  const ModelConfig& config = executor.config();
  const int32_t block_size = executor.kv_block_size();
  const int64_t kv_blocks = executor.kv_blocks();

  // Each sequence gets the blocks for its prompt and every new token up front.
  std::vector<Sequence> seqs(prompts.size());
  int32_t next_block = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) return absl::InvalidArgumentError(absl::StrCat("prompt ", i, " is empty"));
    const int64_t total = static_cast<int64_t>(prompts[i].size()) + options.max_new_tokens;
    if (total > config.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt ", i, " (", prompts[i].size(), " tokens) plus ", options.max_new_tokens,
          " new tokens exceeds the model's context of ", config.max_position_embeddings));
    }
    const int64_t need = (total + block_size - 1) / block_size;
    if (next_block + need > kv_blocks) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the prompts need more than the cluster's ", kv_blocks, " KV blocks of ", block_size,
          " tokens"));
    }
    for (int64_t b = 0; b < need; ++b) seqs[i].blocks.push_back(next_block++);
    seqs[i].next = prompts[i];
  }

  const int groups = static_cast<int>(std::min<int64_t>(
      options.micro_batches > 0 ? options.micro_batches : executor.plan().pp,
      static_cast<int64_t>(prompts.size())));
  ClusterGenerateResult result;
  result.sequences.resize(prompts.size());
  std::deque<InFlight> in_flight;

  auto submit = [&](int group) -> absl::Status {
    StepInput step;
    step.return_logits = options.return_logits;
    InFlight f;
    f.group = group;
    for (size_t i = group; i < seqs.size(); i += groups) {
      if (seqs[i].done) continue;
      SequenceStepInput s;
      s.seq_id = options.first_seq_id + i;
      s.tokens = seqs[i].next;
      s.num_cached = seqs[i].cached;
      s.num_prompt_tokens = static_cast<int32_t>(prompts[i].size());
      if (seqs[i].cached == 0) {
        s.start = true;
        s.new_blocks = seqs[i].blocks;
      }
      s.sampling = options.sampling;
      step.seqs.push_back(std::move(s));
      f.members.push_back(i);
    }
    if (f.members.empty()) return absl::OkStatus();
    STRATA_ASSIGN_OR_RETURN(f.ticket, executor.Submit(step));
    ++result.steps;
    in_flight.push_back(std::move(f));
    return absl::OkStatus();
  };
  // On failure, collect what is still in flight so no ticket is left behind.
  auto drain = [&](absl::Status error) {
    for (const InFlight& f : in_flight) executor.Wait(f.ticket).IgnoreError();
    return error;
  };

  const auto start = Clock::now();
  auto decode_start = start;
  int prefilled_groups = 0;
  for (int g = 0; g < groups; ++g) {
    if (absl::Status s = submit(g); !s.ok()) return drain(s);
  }
  const auto& eos = config.eos_token_ids;
  while (!in_flight.empty()) {
    InFlight f = std::move(in_flight.front());
    in_flight.pop_front();
    auto out = executor.Wait(f.ticket);
    if (!out.ok()) return drain(out.status());
    if (out->tokens.size() != f.members.size()) {
      return drain(absl::InternalError(absl::StrCat("step returned ", out->tokens.size(),
                                                    " tokens for ", f.members.size(),
                                                    " sequences")));
    }
    result.step_wall_seconds += out->wall_seconds;
    result.step_compute_seconds += out->max_compute_seconds;
    result.step_overhead_seconds.push_back(out->wall_seconds - out->max_compute_seconds);
    const bool decoding = prefilled_groups >= groups;
    for (size_t k = 0; k < f.members.size(); ++k) {
      Sequence& seq = seqs[f.members[k]];
      ClusterSequenceOutput& o = result.sequences[f.members[k]];
      const int32_t token = out->tokens[k];
      seq.cached += static_cast<int32_t>(seq.next.size());
      o.tokens.push_back(token);
      if (decoding) ++result.decode_tokens;
      if (options.return_logits) {
        const auto row = out->logits.begin() + static_cast<int64_t>(k) * config.vocab_size;
        o.logits.emplace_back(row, row + config.vocab_size);
      }
      const bool is_eos = std::find(eos.begin(), eos.end(), token) != eos.end();
      seq.done = static_cast<int64_t>(o.tokens.size()) >= options.max_new_tokens ||
                 (options.stop_at_eos && is_eos);
      seq.next = {token};
    }
    if (!decoding && ++prefilled_groups == groups) decode_start = Clock::now();
    if (absl::Status s = submit(f.group); !s.ok()) return drain(s);
  }
  const auto end = Clock::now();
  result.seconds = std::chrono::duration<double>(end - start).count();
  result.decode_seconds = std::chrono::duration<double>(end - decode_start).count();

  StepInput release;
  for (size_t i = 0; i < seqs.size(); ++i) release.release.push_back(options.first_seq_id + i);
  STRATA_RETURN_IF_ERROR(executor.Run(release).status());
  return result;
}

}  // namespace strata

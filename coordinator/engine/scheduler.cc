#include "coordinator/engine/scheduler.h"

#include <algorithm>

#include "common/status.h"

namespace strata::engine {

Scheduler::Scheduler(BlockManager& blocks, SchedulerOptions options)
    : blocks_(blocks), options_(options), block_size_(blocks.block_size()) {
  STRATA_CHECK(options_.max_batched_tokens > 0 && options_.max_seqs > 0);
}

void Scheduler::Add(Sequence* seq) {
  seq->status = SeqStatus::kWaiting;
  waiting_.insert(seq);
}

void Scheduler::Remove(Sequence* seq) {
  STRATA_CHECK(!seq->in_flight);
  if (seq->status == SeqStatus::kRunning) EraseRunning(seq);
  if (seq->status == SeqStatus::kWaiting) waiting_.erase(seq);
  ReleaseBlocks(seq);
  if (seq->ever_started) releases_.push_back(seq->id);
  seq->status = SeqStatus::kFinished;
}

void Scheduler::PreemptAll() {
  const std::vector<Sequence*> running = running_;
  for (Sequence* seq : running) {
    if (!seq->in_flight) Preempt(seq);
  }
}

void Scheduler::EraseRunning(Sequence* seq) {
  auto it = std::find(running_.begin(), running_.end(), seq);
  if (it != running_.end()) running_.erase(it);
}

void Scheduler::ReleaseBlocks(Sequence* seq) {
  for (int32_t block : seq->blocks) blocks_.Release(block);
  seq->blocks.clear();
  seq->num_computed = 0;
  seq->num_committed = 0;
  seq->blocks_sent = 0;
  seq->needs_start = true;
}

void Scheduler::Preempt(Sequence* seq) {
  EraseRunning(seq);
  ReleaseBlocks(seq);
  seq->status = SeqStatus::kWaiting;
  waiting_.insert(seq);
  ++preemptions_;
}

void Scheduler::ExtendHashes(Sequence* seq, int64_t full_blocks) {
  for (int64_t b = static_cast<int64_t>(seq->hashes.size()); b < full_blocks; ++b) {
    const BlockHash parent = b == 0 ? BlockHash{} : seq->hashes[b - 1];
    seq->hashes.push_back(blocks_.Hash(
        parent, absl::MakeConstSpan(seq->tokens).subspan(b * block_size_, block_size_)));
  }
}

bool Scheduler::EnsureBlocks(Sequence* seq, int64_t tokens) {
  const int64_t needed = (tokens + block_size_ - 1) / block_size_;
  while (static_cast<int64_t>(seq->blocks.size()) < needed) {
    if (std::optional<int32_t> block = blocks_.Allocate()) {
      seq->blocks.push_back(*block);
      continue;
    }
    // Out of blocks: preempt the most recently admitted sequence that is free to go.
    Sequence* victim = nullptr;
    for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
      if (!(*it)->in_flight && !(*it)->planned) {
        victim = *it;
        break;
      }
    }
    if (victim == nullptr) return false;
    Preempt(victim);
    if (victim == seq) return false;
  }
  return true;
}

bool Scheduler::TryAdmit(Sequence* seq, int64_t budget) {
  const int64_t total = static_cast<int64_t>(seq->tokens.size());
  // The longest cached prefix, leaving at least the last token to compute.
  const int64_t full = (total - 1) / block_size_;
  ExtendHashes(seq, full);
  std::vector<int32_t> cached =
      blocks_.Match(absl::MakeConstSpan(seq->hashes).subspan(0, full));
  const int64_t cached_tokens = static_cast<int64_t>(cached.size()) * block_size_;
  const int64_t chunk = std::min(total - cached_tokens, budget);
  const int64_t needed = (cached_tokens + chunk + block_size_ - 1) / block_size_ -
                         static_cast<int64_t>(cached.size());
  if (blocks_.num_available() < needed) {
    for (int32_t block : cached) blocks_.Release(block);
    return false;
  }
  seq->blocks = std::move(cached);
  seq->num_computed = static_cast<int32_t>(cached_tokens);
  seq->num_committed = static_cast<int32_t>(seq->blocks.size());
  for (int64_t i = 0; i < needed; ++i) seq->blocks.push_back(*blocks_.Allocate());
  seq->needs_start = true;
  seq->blocks_sent = 0;
  return true;
}

void Scheduler::Plan(Sequence* seq, int32_t chunk, ScheduledStep& step) {
  SequenceStepInput in;
  in.seq_id = seq->id;
  in.tokens.assign(seq->tokens.begin() + seq->num_computed,
                   seq->tokens.begin() + seq->num_computed + chunk);
  in.num_cached = seq->num_computed;
  in.start = seq->needs_start;
  in.new_blocks.assign(seq->blocks.begin() + (seq->needs_start ? 0 : seq->blocks_sent),
                       seq->blocks.end());
  in.num_prompt_tokens = seq->num_prompt;
  in.sample = seq->num_computed + chunk == static_cast<int32_t>(seq->tokens.size());
  if (in.sample) in.sampling = seq->sampling;
  if (in.start && seq->num_computed > 0 && seq->sampling.HasPenalties()) {
    in.cached_tokens.assign(seq->tokens.begin(), seq->tokens.begin() + seq->num_computed);
  }
  step.input.seqs.push_back(std::move(in));
  step.seqs.push_back(seq);
  step.num_tokens += chunk;
  seq->in_flight = true;
  seq->planned = true;
  seq->scheduled = chunk;
  seq->blocks_sent = static_cast<int32_t>(seq->blocks.size());
  seq->needs_start = false;
  seq->ever_started = true;
}

std::optional<ScheduledStep> Scheduler::Schedule() {
  ScheduledStep step;
  int64_t budget = options_.max_batched_tokens;

  // 1. Running sequences, oldest admission first (a copy: preemption edits running_).
  const std::vector<Sequence*> running = running_;
  for (Sequence* seq : running) {
    if (budget == 0) break;
    if (seq->in_flight || seq->status != SeqStatus::kRunning) continue;
    const int64_t need = static_cast<int64_t>(seq->tokens.size()) - seq->num_computed;
    const int32_t chunk = static_cast<int32_t>(std::min(need, budget));
    if (!EnsureBlocks(seq, seq->num_computed + chunk)) continue;
    Plan(seq, chunk, step);
    budget -= chunk;
  }

  // 2. Waiting sequences: priority, then arrival; stop at the first that does not fit.
  while (budget > 0 && num_running() < options_.max_seqs && !waiting_.empty()) {
    Sequence* seq = *waiting_.begin();
    if (!TryAdmit(seq, budget)) break;
    waiting_.erase(waiting_.begin());
    seq->status = SeqStatus::kRunning;
    seq->admitted = ++admissions_;
    running_.push_back(seq);
    const int32_t chunk = static_cast<int32_t>(
        std::min<int64_t>(static_cast<int64_t>(seq->tokens.size()) - seq->num_computed, budget));
    Plan(seq, chunk, step);
    budget -= chunk;
  }

  for (Sequence* seq : step.seqs) seq->planned = false;
  if (step.seqs.empty() && releases_.empty()) return std::nullopt;
  step.input.release = std::move(releases_);
  releases_.clear();
  return step;
}

void Scheduler::Complete(const ScheduledStep& step) {
  for (Sequence* seq : step.seqs) {
    seq->in_flight = false;
    seq->num_computed += seq->scheduled;
    seq->scheduled = 0;
    // Commit every block that became full.
    const int64_t full = seq->num_computed / block_size_;
    ExtendHashes(seq, full);
    for (; seq->num_committed < full; ++seq->num_committed) {
      blocks_.Commit(seq->blocks[seq->num_committed], seq->hashes[seq->num_committed]);
    }
  }
}

void Scheduler::Abandon(const ScheduledStep& step) {
  for (Sequence* seq : step.seqs) {
    seq->in_flight = false;
    seq->scheduled = 0;
  }
}

}  // namespace strata::engine

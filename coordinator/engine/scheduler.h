// Scheduler: decides what every step computes. Iteration-level continuous batching over the
// paged KV cache, in the style of vLLM and Orca:
//
//   Each call to Schedule() builds one step from the sequences that are not already in a step
//   in flight (under pipeline parallelism the engine keeps one step per stage in flight, each
//   over different sequences), within a budget of `max_batched_tokens` tokens:
//
//   1. Running sequences first, oldest admission first. A decoding sequence needs one token; one
//      whose prompt is still being prefilled needs the rest of it, cut to the budget (chunked
//      prefill: a long prompt takes several steps and never stalls the decodes). Each gets the
//      blocks its new tokens need; when none is left, the most recently admitted running
//      sequence that is not in this step or in flight is preempted: its blocks are released
//      and it goes back to the waiting queue, to be recomputed from its tokens later (prompt
//      and everything generated so far) — its output continues exactly, since sampling is keyed
//      by position. If the only candidate is the sequence itself, it is preempted.
//   2. Then waiting sequences, highest priority first, then first come first served, while the
//      budget, `max_seqs` running sequences and free blocks allow. An admitted sequence first
//      takes the longest cached prefix of its tokens (block_manager.h; at least its last token is
//      always computed, so the step produces logits), then a chunk of the rest. Admission never
//      preempts, and stops at the first sequence that does not fit (no overtaking).
//
//   Complete() marks the step's tokens computed and commits every block that became full to the
//   prefix cache. The engine appends sampled tokens to the sequences between steps.
//
// Cost per Schedule() is linear in the running sequences plus the ones admitted.
// Not thread-safe: the engine's thread owns it.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <vector>

#include "common/sampling_params.h"
#include "common/step.h"
#include "coordinator/engine/block_manager.h"

namespace strata::engine {

enum class SeqStatus { kWaiting, kRunning, kFinished };

// One sample of a request, as the scheduler tracks it.
struct Sequence {
  uint64_t id = 0;
  void* owner = nullptr;  // the engine's state for this sequence
  int64_t arrival = 0;   // FCFS order
  int32_t priority = 0;  // higher first
  SamplingParams sampling;
  std::vector<int32_t> tokens;  // prompt, then generated tokens
  int32_t num_prompt = 0;

  // KV state.
  SeqStatus status = SeqStatus::kWaiting;
  int32_t num_computed = 0;        // tokens whose KV is in the cache
  std::vector<int32_t> blocks;     // block table
  std::vector<BlockHash> hashes;   // prefix hashes of the full blocks of `tokens` (a prefix)
  int32_t num_committed = 0;       // leading blocks committed to (or taken from) the cache
  int32_t blocks_sent = 0;         // leading blocks the workers already have
  bool needs_start = true;         // the next step sends the whole table
  bool ever_started = false;       // the workers may hold state for it
  bool in_flight = false;
  int32_t scheduled = 0;           // tokens in the step in flight
  int64_t admitted = 0;            // admission order: the latest is preempted first
  bool planned = false;            // in the step being built

  bool prefilling() const { return num_computed + 1 < static_cast<int32_t>(tokens.size()); }
};

struct SchedulerOptions {
  int64_t max_batched_tokens = 2048;  // tokens per step
  int32_t max_seqs = 256;             // running sequences
};

struct ScheduledStep {
  StepInput input;
  std::vector<Sequence*> seqs;  // input.seqs[i] belongs to seqs[i]
  int64_t num_tokens = 0;
};

class Scheduler {
 public:
  Scheduler(BlockManager& blocks, SchedulerOptions options);

  // Queues a sequence (status kWaiting, nothing computed).
  void Add(Sequence* seq);
  // Takes a sequence out (finished or cancelled; not in flight): releases its blocks, and the
  // workers are told to forget it with the next step.
  void Remove(Sequence* seq);
  // Puts every running sequence that is not in flight back in the waiting queue, with nothing
  // computed (after the cluster lost its KV cache).
  void PreemptAll();

  // The next step, or nullopt when nothing can run (nothing waiting or running, or everything
  // runnable is in flight, or no blocks).
  std::optional<ScheduledStep> Schedule();
  // The step's results are in: its tokens are computed. Sequences leave the in-flight state.
  void Complete(const ScheduledStep& step);
  // Forgets that the step's sequences were in flight without computing anything (it failed).
  void Abandon(const ScheduledStep& step);

  int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
  int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t preemptions() const { return preemptions_; }
  bool has_pending_releases() const { return !releases_.empty(); }
  const SchedulerOptions& options() const { return options_; }

 private:
  struct WaitingOrder {
    bool operator()(const Sequence* a, const Sequence* b) const {
      if (a->priority != b->priority) return a->priority > b->priority;
      if (a->arrival != b->arrival) return a->arrival < b->arrival;
      return a->id < b->id;
    }
  };

  // Makes seq's table cover `tokens` tokens, preempting as needed. False when it cannot (seq
  // may have been preempted itself).
  bool EnsureBlocks(Sequence* seq, int64_t tokens);
  bool TryAdmit(Sequence* seq, int64_t budget);
  void Preempt(Sequence* seq);
  void ReleaseBlocks(Sequence* seq);
  void ExtendHashes(Sequence* seq, int64_t full_blocks);
  void Plan(Sequence* seq, int32_t chunk, ScheduledStep& step);
  void EraseRunning(Sequence* seq);

  BlockManager& blocks_;
  const SchedulerOptions options_;
  const int32_t block_size_;
  std::vector<Sequence*> running_;  // admission order
  std::set<Sequence*, WaitingOrder> waiting_;
  std::vector<uint64_t> releases_;
  int64_t admissions_ = 0;
  int64_t preemptions_ = 0;
};

}  // namespace strata::engine

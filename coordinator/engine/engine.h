// Engine: the one generation loop. Requests come in from any thread; one engine thread
// schedules steps (scheduler.h), runs them on an Executor (common/executor.h: worker processes
// for `strata serve`, an in-process shard for `strata generate`, fakes in tests), and turns
// sampled tokens into per-request output events.
//
// Request lifecycle: Add() validates and queues; every sample of the request becomes a
// sequence (n > 1 samples share the prompt's KV: the first sample prefills, the others are
// admitted once its prompt blocks are in the prefix cache). Each new token is checked, in
// order, for: a stop token id or EOS (unless ignore_eos; the token is not part of the text),
// max_tokens, and stop strings on the detokenized text (the text up to the stop string is
// returned, the rest dropped; text that might still become a stop string is held back, always
// at a UTF-8 character boundary). Cancel() (or a callback returning false, e.g. a client that
// disconnected) ends a request at the next step boundary. Every finished or cancelled sequence
// releases its blocks.
//
// Cluster failure: a failed step fails nothing by itself; the engine waits for the executor to
// recover (a ClusterExecutor reloads when workers return), then recomputes every running sequence
// from its tokens, so the output continues unchanged. If the cluster is not back within
// `recovery_timeout`, every request ends with the error. Meanwhile new requests queue.
//
// Queue bound: a request none of whose samples has started within `max_queue_time` (the
// cluster is down, or too busy) ends with Unavailable, which the gateway answers with 503 and
// Retry-After; a request that has started is never dropped for time.
//
// Sampling is keyed by (seed, sample index, position), so a request's tokens do not depend on
// what else is batched with it; requests without a seed get a random one.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/sampling_params.h"
#include "common/executor.h"
#include "coordinator/engine/scheduler.h"

namespace strata::tokenizer {
class Tokenizer;
}

namespace strata::engine {

// What one step cost (EngineOptions::on_step).
struct StepTiming {
  int64_t tokens = 0;            // tokens computed
  int64_t sequences = 0;
  double wall_seconds = 0;       // submission to answer
  double compute_seconds = 0;    // the slowest rank's time inside the step
};

struct EngineOptions {
  SchedulerOptions scheduler;  // max_batched_tokens must not exceed the executor's step size
  bool prefix_caching = true;
  int max_in_flight = 0;  // steps in flight; 0 = the executor's pipeline depth
  std::chrono::milliseconds recovery_timeout{std::chrono::minutes(2)};
  std::chrono::milliseconds max_queue_time{std::chrono::minutes(1)};  // 0: no bound
  // When the cluster is lost, end every sample at once with a resumable error (a
  // ReplicaRouter moves it to a healthy replica) instead of holding it through the recovery.
  bool hand_off_on_failure = false;
  // Called on the engine thread after every completed step (benchmarks); must not block.
  std::function<void(const StepTiming&)> on_step;
};

struct GenerationRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;             // seed and stream are filled in per sample
  std::optional<uint64_t> seed;        // none: a random seed
  int32_t n = 1;                       // parallel samples
  int64_t max_tokens = 16;
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;
  std::vector<std::string> stop;       // stop strings (need the engine's tokenizer)
  int32_t priority = 0;                // higher first
  // Whose request (an API key's id): within a priority, tenants take turns being admitted
  // (start-time fair queuing), so one client's burst does not queue everyone behind it.
  std::string tenant;
  bool return_logits = false;          // each event carries its token's logits (tests, scoring)

  // Resuming a sample another engine began (a replica that failed): sample i samples with
  // stream first_stream + i; `resume_output` are the tokens it already delivered, recomputed
  // with the prompt but counted as output (penalties, max_tokens) and not sent again;
  // `resume_held` is the text it held back (it may begin a stop string). Needs n = 1.
  uint32_t first_stream = 0;
  std::vector<int32_t> resume_output;
  std::string resume_held;
};

enum class FinishReason { kNone, kLength, kStop, kCancelled, kError };
const char* FinishReasonName(FinishReason reason);  // "length", "stop", ...

// One event for one sample: what is new since the last event.
struct SampleOutput {
  uint64_t request_id = 0;
  int32_t index = 0;                    // which sample
  std::vector<int32_t> token_ids;
  std::vector<TokenLogprobs> logprobs;  // [token_ids.size()] when logprobs were asked for
  std::string text;                     // with a tokenizer
  FinishReason finish = FinishReason::kNone;
  std::string stop;                     // the stop string or token that ended it, if any
  absl::Status error;                   // with kError
  int64_t prompt_tokens = 0;            // set on the first event
  int64_t cached_prompt_tokens = 0;     // prompt tokens taken from the prefix cache
  double queue_seconds = 0;             // first event: from Add() to the first scheduled step
  std::vector<float> logits;            // with return_logits: the new token's [vocab] logits
  // With kError under EngineOptions::hand_off_on_failure: the cluster was lost and the sample
  // can resume elsewhere from what it delivered; `held` is the text it had not yet sent.
  bool resumable = false;
  std::string held;
};

// Called on the engine thread for every event; must not block. Returning false cancels the
// request (its client went away).
using OutputCallback = std::function<bool(const SampleOutput&)>;

struct EngineStats {
  int64_t running = 0;
  int64_t waiting = 0;
  int64_t kv_blocks = 0;
  int64_t kv_blocks_free = 0;  // free or evictable
  int64_t preemptions = 0;
  int64_t prefix_query_blocks = 0;
  int64_t prefix_hit_blocks = 0;
  int64_t steps = 0;
  double step_seconds = 0;      // the steps' wall time, submission to answer, summed
  int64_t computed_tokens = 0;  // tokens run through the model
  int64_t cluster_failures = 0;  // steps the cluster failed (a worker died, stalled, ...)
  int64_t recoveries = 0;        // times the cluster came back and running sequences resumed
  int64_t sequence_faults = 0;   // sequences ended alone: non-finite logits, a refused step
  int64_t handed_off = 0;        // samples handed to another replica when the cluster was lost
};

class Engine {
 public:
  // `tokenizer` (may be null: no text, no stop strings) must outlive the engine.
  static absl::StatusOr<std::unique_ptr<Engine>> Start(Executor& executor,
                                                       const tokenizer::Tokenizer* tokenizer,
                                                       EngineOptions options);
  ~Engine();  // cancels what is left and stops the thread
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; InvalidArgument names what is wrong (empty prompt, a token outside the
  // vocabulary, prompt plus max_tokens longer than the context, sampling out of range, stop
  // strings without a tokenizer).
  absl::StatusOr<uint64_t> Add(GenerationRequest request, OutputCallback on_output);
  // Ends a request at the next step boundary (its samples finish with kCancelled).
  void Cancel(uint64_t request_id);

  EngineStats stats() const;
  int64_t max_model_len() const;

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::engine

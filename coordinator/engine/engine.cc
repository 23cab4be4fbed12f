#include "coordinator/engine/engine.h"

#include <algorithm>
#include <deque>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "coordinator/tokenizer/incremental_detokenizer.h"
#include "coordinator/tokenizer/tokenizer.h"

namespace strata::engine {
namespace {

constexpr int32_t kMaxSamples = 64;
constexpr size_t kMaxStopStrings = 16;

struct RequestState;

// One sample of a request: its sequence and its output state.
struct SampleState {
  Sequence seq;
  RequestState* request = nullptr;
  int32_t index = 0;
  int64_t generated = 0;
  std::unique_ptr<tokenizer::IncrementalDetokenizer> detokenizer;
  std::string held;              // text not yet emitted: it may begin a stop string
  bool queued = false;           // handed to the scheduler
  bool done = false;
  bool reported_prompt = false;  // the first event carries the prompt figures
  int64_t cached_prompt_tokens = -1;  // prefix-cache hit of the first admission
  bool computed = false;              // a step with it has completed: it is no longer queued
  double queue_seconds = 0;
};

struct RequestState {
  uint64_t id = 0;
  GenerationRequest request;
  OutputCallback on_output;
  std::vector<std::unique_ptr<SampleState>> samples;
  int32_t live = 0;
  bool cancel = false;
  std::chrono::steady_clock::time_point arrived = std::chrono::steady_clock::now();
};

struct InFlight {
  ScheduledStep step;
  Executor::Ticket ticket = 0;
};

// The end of the longest prefix of `text` that is whole UTF-8 characters and at most `limit`.
size_t Utf8Boundary(const std::string& text, size_t limit) {
  while (limit > 0 && limit < text.size() &&
         (static_cast<unsigned char>(text[limit]) & 0xC0) == 0x80) {
    --limit;
  }
  return limit;
}

}  // namespace

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone: return "";
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "";
}

struct Engine::Impl {
  Impl(Executor& e, const tokenizer::Tokenizer* t, EngineOptions o)
      : executor(e), tokenizer(t), options(o),
        blocks(e.kv_blocks(), e.kv_block_size(), o.prefix_caching),
        scheduler(blocks, o.scheduler) {}

  Executor& executor;
  const tokenizer::Tokenizer* tokenizer;
  const EngineOptions options;
  BlockManager blocks;     // engine thread only
  Scheduler scheduler;     // engine thread only
  int max_in_flight = 1;
  int64_t max_model_len = 0;

  mutable std::mutex mu;   // guards the fields below
  std::condition_variable wake;
  bool stopping = false;
  uint64_t next_request = 1;
  std::vector<std::unique_ptr<RequestState>> inbox;
  std::vector<uint64_t> cancels;
  EngineStats stats;
  std::mt19937_64 random{std::random_device{}()};
  std::thread thread;

  // Engine thread state.
  std::map<uint64_t, std::unique_ptr<RequestState>> requests;
  std::vector<RequestState*> gated;  // n > 1: siblings wait for sample 0's prompt
  uint64_t next_seq = 1;
  double step_seconds = 0;
  // Fair share between tenants (Accept).
  std::map<std::string, int64_t> tenant_tags;
  int64_t virtual_time = 0;
  int64_t steps = 0, computed_tokens = 0, cluster_failures = 0, recoveries = 0,
          sequence_faults = 0, handed_off = 0;
  std::chrono::steady_clock::time_point next_expiry_check;

  void Loop();
  // Takes in what other threads queued: new requests and cancellations.
  void Intake();
  // Ends requests that have waited longer than max_queue_time without starting. `why` (when
  // not OK) says why nothing started: the cluster is down.
  void ExpireQueued(const absl::Status& why);
  void Accept(std::unique_ptr<RequestState> request);
  void ReleaseGated();
  void ProcessCancels();
  void OnToken(SampleState& sample, int32_t token, const std::optional<TokenLogprobs>& logprobs,
               std::vector<float> logits);
  // Ends a sample (not in flight): emits the final event, frees its sequence.
  void Finish(SampleState& sample, SampleOutput& event, FinishReason reason);
  bool Emit(SampleState& sample, SampleOutput& event);
  // A step failed. When the workers refused it (they check a step whole before touching any
  // state) and the cluster is healthy, only its requests end: the cluster, the other steps in
  // flight and the prefix cache stay. Otherwise the cluster was lost: RecoverOrFail.
  void OnStepFailed(const ScheduledStep& step, const absl::Status& error,
                    std::deque<InFlight>& in_flight);
  void RecoverOrFail(const absl::Status& error, std::deque<InFlight>& in_flight);
  // Ends every live sample with a resumable error (EngineOptions::hand_off_on_failure).
  void HandOffAll(const absl::Status& error);
  void PublishStats();
  static SampleState* SampleOf(Sequence* seq) { return static_cast<SampleState*>(seq->owner); }
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Start(Executor& executor,
                                                       const tokenizer::Tokenizer* tokenizer,
                                                       EngineOptions options) {
  if (options.scheduler.max_batched_tokens < 1 || options.scheduler.max_seqs < 1) {
    return absl::InvalidArgumentError("engine: max_batched_tokens and max_seqs must be >= 1");
  }
  if (options.scheduler.max_batched_tokens > executor.max_step_tokens()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "engine: max_batched_tokens ", options.scheduler.max_batched_tokens,
        " exceeds the executor's step size of ", executor.max_step_tokens(), " tokens"));
  }
  auto impl = std::make_unique<Impl>(executor, tokenizer, options);
  impl->max_in_flight =
      options.max_in_flight > 0 ? options.max_in_flight : executor.pipeline_depth();
  impl->max_model_len = std::min<int64_t>(executor.config().max_position_embeddings,
                                          executor.kv_blocks() * executor.kv_block_size());
  STRATA_LOG_INFO("engine: {} KV blocks of {} tokens ({} tokens), max model length {}, up to {} "
                  "sequences and {} tokens per step, {} step(s) in flight, prefix caching {}",
                  executor.kv_blocks(), executor.kv_block_size(),
                  executor.kv_blocks() * executor.kv_block_size(), impl->max_model_len,
                  options.scheduler.max_seqs, options.scheduler.max_batched_tokens,
                  impl->max_in_flight, options.prefix_caching ? "on" : "off");
  Impl* raw = impl.get();
  raw->PublishStats();
  raw->thread = std::thread([raw] { raw->Loop(); });
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int64_t Engine::max_model_len() const { return impl_->max_model_len; }

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

absl::StatusOr<uint64_t> Engine::Add(GenerationRequest request, OutputCallback on_output) {
  Impl& s = *impl_;
  const ModelConfig& config = s.executor.config();
  if (request.prompt.empty()) return absl::InvalidArgumentError("the prompt is empty");
  for (int32_t id : request.prompt) {
    if (id < 0 || id >= config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("prompt token id ", id,
                                                     " is outside the vocabulary of ",
                                                     config.vocab_size));
    }
  }
  if (request.max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens must be at least 1, got ", request.max_tokens));
  }
  const int64_t total = static_cast<int64_t>(request.prompt.size()) + request.max_tokens;
  if (total > s.max_model_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "this model's maximum context length is ", s.max_model_len, " tokens; the request has ",
        request.prompt.size(), " prompt tokens and asks for ", request.max_tokens,
        " more (", total, " in all)"));
  }
  if (request.n < 1 || request.n > kMaxSamples) {
    return absl::InvalidArgumentError(
        absl::StrCat("n must be in [1, ", kMaxSamples, "], got ", request.n));
  }
  if (!request.resume_output.empty() || !request.resume_held.empty()) {
    if (request.n != 1) return absl::InvalidArgumentError("a resumed request has n = 1");
    if (static_cast<int64_t>(request.resume_output.size()) >= request.max_tokens) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a resumed request delivered ", request.resume_output.size(),
          " tokens already, as many as its max_tokens ", request.max_tokens));
    }
    for (int32_t id : request.resume_output) {
      if (id < 0 || id >= config.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("resumed token id ", id, " is outside the vocabulary"));
      }
    }
  }
  STRATA_RETURN_IF_ERROR(request.sampling.Validate(config.vocab_size));
  if (!request.stop.empty() && s.tokenizer == nullptr) {
    return absl::InvalidArgumentError("stop strings need a tokenizer");
  }
  if (request.stop.size() > kMaxStopStrings) {
    return absl::InvalidArgumentError(
        absl::StrCat("at most ", kMaxStopStrings, " stop strings, got ", request.stop.size()));
  }
  for (const std::string& stop : request.stop) {
    if (stop.empty()) return absl::InvalidArgumentError("a stop string is empty");
  }
  for (int32_t id : request.stop_token_ids) {
    if (id < 0 || id >= config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("stop token id ", id,
                                                     " is outside the vocabulary"));
    }
  }
  auto state = std::make_unique<RequestState>();
  state->request = std::move(request);
  state->on_output = std::move(on_output);
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.stopping) return absl::UnavailableError("the engine is shutting down");
    id = s.next_request++;
    state->id = id;
    if (!state->request.seed) state->request.seed = s.random();
    s.inbox.push_back(std::move(state));
  }
  s.wake.notify_all();
  return id;
}

void Engine::Cancel(uint64_t request_id) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->cancels.push_back(request_id);
  }
  impl_->wake.notify_all();
}

void Engine::Impl::Accept(std::unique_ptr<RequestState> request) {
  RequestState& r = *request;
  const GenerationRequest& g = r.request;
  // Start-time fair queuing: a request's tag is the later of the virtual time (the tag last
  // admitted) and its tenant's previous tag + 1, so waiting tenants take turns (ties: arrival).
  int64_t& last = tenant_tags[g.tenant];
  const int64_t start_tag = std::max(virtual_time, last + 1);
  last = start_tag;
  if (tenant_tags.size() > 4096) {  // forget tenants that are no longer ahead of the clock
    std::erase_if(tenant_tags, [&](const auto& t) { return t.second <= virtual_time; });
  }
  for (int32_t i = 0; i < g.n; ++i) {
    auto sample = std::make_unique<SampleState>();
    sample->request = &r;
    sample->index = i;
    Sequence& seq = sample->seq;
    seq.owner = sample.get();
    seq.id = next_seq++;
    seq.arrival = start_tag;
    seq.priority = g.priority;
    seq.sampling = g.sampling;
    seq.sampling.seed = *g.seed;
    seq.sampling.stream = g.first_stream + static_cast<uint32_t>(i);
    seq.tokens = g.prompt;
    seq.num_prompt = static_cast<int32_t>(g.prompt.size());
    // A resumed sample: its delivered tokens are recomputed as if just generated (the sampler
    // draws by position, so what follows is what the first engine would have drawn).
    seq.tokens.insert(seq.tokens.end(), g.resume_output.begin(), g.resume_output.end());
    sample->generated = static_cast<int64_t>(g.resume_output.size());
    sample->held = g.resume_held;
    if (tokenizer != nullptr) {
      sample->detokenizer = std::make_unique<tokenizer::IncrementalDetokenizer>(
          *tokenizer, /*skip_special=*/true, seq.tokens);
    }
    r.samples.push_back(std::move(sample));
  }
  r.live = g.n;
  // Sample 0 prefills; with prefix caching the others wait to reuse its prompt blocks.
  const bool gate = g.n > 1 && options.prefix_caching;
  for (auto& sample : r.samples) {
    if (sample->index == 0 || !gate) {
      scheduler.Add(&sample->seq);
      sample->queued = true;
    }
  }
  if (gate) gated.push_back(&r);
  requests.emplace(r.id, std::move(request));
}

void Engine::Impl::ReleaseGated() {
  std::erase_if(gated, [&](RequestState* r) {
    const SampleState& first = *r->samples[0];
    if (!first.done && !r->cancel && first.seq.num_computed < first.seq.num_prompt) return false;
    for (auto& sample : r->samples) {
      if (!sample->queued && !sample->done) {
        scheduler.Add(&sample->seq);
        sample->queued = true;
      }
    }
    return true;
  });
}

bool Engine::Impl::Emit(SampleState& sample, SampleOutput& event) {
  event.request_id = sample.request->id;
  event.index = sample.index;
  if (!sample.reported_prompt) {
    sample.reported_prompt = true;
    event.prompt_tokens = sample.seq.num_prompt;
    event.cached_prompt_tokens = std::max<int64_t>(sample.cached_prompt_tokens, 0);
    event.queue_seconds = sample.queue_seconds;
  }
  return sample.request->on_output(event);
}

void Engine::Impl::Finish(SampleState& sample, SampleOutput& event, FinishReason reason) {
  event.finish = reason;
  sample.done = true;
  if (sample.queued) scheduler.Remove(&sample.seq);
  PublishStats();  // a caller that saw this event sees the blocks back
  Emit(sample, event);
  RequestState& r = *sample.request;
  if (--r.live == 0) {
    std::erase(gated, &r);
    requests.erase(r.id);  // destroys `sample`
  }
}

void Engine::Impl::ProcessCancels() {
  std::vector<RequestState*> cancelled;
  for (auto& [id, r] : requests) {
    if (r->cancel) cancelled.push_back(r.get());
  }
  for (RequestState* r : cancelled) {
    // Finish() may destroy the request with its last sample; collect first.
    std::vector<SampleState*> live;
    for (auto& sample : r->samples) {
      if (!sample->done && !sample->seq.in_flight) live.push_back(sample.get());
    }
    for (SampleState* sample : live) {
      SampleOutput event;
      Finish(*sample, event, FinishReason::kCancelled);
    }
  }
}

void Engine::Impl::OnToken(SampleState& sample, int32_t token,
                           const std::optional<TokenLogprobs>& logprobs,
                           std::vector<float> logits) {
  RequestState& r = *sample.request;
  const GenerationRequest& g = r.request;
  sample.seq.tokens.push_back(token);
  ++sample.generated;
  SampleOutput event;
  event.token_ids = {token};
  if (logprobs) event.logprobs = {*logprobs};
  event.logits = std::move(logits);

  const auto& eos = executor.config().eos_token_ids;
  const bool is_eos = !g.ignore_eos && std::find(eos.begin(), eos.end(), token) != eos.end();
  const bool is_stop_id =
      std::find(g.stop_token_ids.begin(), g.stop_token_ids.end(), token) != g.stop_token_ids.end();
  if (is_eos || is_stop_id) {
    if (is_stop_id) event.stop = std::to_string(token);
    if (sample.detokenizer != nullptr) {
      event.text = std::move(sample.held);
      if (auto rest = sample.detokenizer->Finish(); rest.ok()) event.text += *rest;
    }
    return Finish(sample, event, FinishReason::kStop);
  }

  if (sample.detokenizer != nullptr) {
    absl::StatusOr<std::string> delta = sample.detokenizer->Add(token);
    if (delta.ok()) sample.held += *delta;
    // The earliest stop string in the text not yet emitted.
    size_t best = std::string::npos;
    const std::string* matched = nullptr;
    size_t longest = 0;
    for (const std::string& stop : g.stop) {
      longest = std::max(longest, stop.size());
      const size_t at = sample.held.find(stop);
      if (at < best) {
        best = at;
        matched = &stop;
      }
    }
    if (matched != nullptr) {
      event.text = sample.held.substr(0, best);
      event.stop = *matched;
      sample.held.clear();
      return Finish(sample, event, FinishReason::kStop);
    }
    // Hold back what could still begin a stop string.
    const size_t keep = longest > 0 ? longest - 1 : 0;
    if (sample.held.size() > keep) {
      const size_t cut = Utf8Boundary(sample.held, sample.held.size() - keep);
      event.text = sample.held.substr(0, cut);
      sample.held.erase(0, cut);
    }
  }
  if (sample.generated >= g.max_tokens) {
    if (sample.detokenizer != nullptr) {
      event.text += sample.held;
      sample.held.clear();
      if (auto rest = sample.detokenizer->Finish(); rest.ok()) event.text += *rest;
    }
    return Finish(sample, event, FinishReason::kLength);
  }
  if (!Emit(sample, event)) r.cancel = true;
}

void Engine::Impl::OnStepFailed(const ScheduledStep& step, const absl::Status& error,
                                std::deque<InFlight>& in_flight) {
  scheduler.Abandon(step);
  const bool refused = error.code() == absl::StatusCode::kInvalidArgument ||
                       error.code() == absl::StatusCode::kOutOfRange;
  if (!refused || !executor.health().ok()) {
    RecoverOrFail(error, in_flight);
    return;
  }
  // Every input a request brings is checked when it is added, so a refused step is a fault in
  // the server itself: say so to the step's requests, and retry nothing (it would be refused
  // again).
  STRATA_LOG_ERROR("engine: the workers refused a step of {} sequence(s): {}", step.seqs.size(),
                   error.ToString());
  for (Sequence* seq : step.seqs) {
    SampleOutput event;
    event.error = absl::InternalError(absl::StrCat(
        "the workers refused the step computing this request (a fault in the server; the "
        "cluster is fine): ",
        error.message()));
    ++sequence_faults;
    Finish(*SampleOf(seq), event, FinishReason::kError);
  }
}

void Engine::Impl::RecoverOrFail(const absl::Status& error, std::deque<InFlight>& in_flight) {
  STRATA_LOG_ERROR("engine: step failed: {}", error.ToString());
  ++cluster_failures;
  // Every step still in flight failed with it (or ran on a cluster that is being reloaded).
  for (InFlight& f : in_flight) {
    executor.Wait(f.ticket).IgnoreError();
    scheduler.Abandon(f.step);
  }
  in_flight.clear();
  if (options.hand_off_on_failure) HandOffAll(error);
  // Wait for the cluster in slices: new requests keep queueing (and time out of the queue) and
  // cancellations are honoured meanwhile.
  constexpr std::chrono::milliseconds kSlice(100);
  const auto deadline = std::chrono::steady_clock::now() + options.recovery_timeout;
  absl::Status ready;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    ready = executor.WaitReady(std::clamp(left, std::chrono::milliseconds(0), kSlice));
    if (ready.ok() || left <= kSlice) break;
    Intake();
    ProcessCancels();
    ExpireQueued(error);
    PublishStats();
    std::lock_guard<std::mutex> lock(mu);
    if (stopping) break;
  }
  if (ready.ok()) {
    STRATA_LOG_INFO("engine: cluster is back; recomputing {} running sequence(s)",
                    scheduler.num_running());
    scheduler.PreemptAll();
    blocks.ForgetCache();  // the reloaded workers hold none of it
    ++recoveries;
    return;
  }
  STRATA_LOG_ERROR("engine: cluster did not recover: failing every request");
  std::vector<SampleState*> live;
  for (auto& [id, r] : requests) {
    for (auto& sample : r->samples) {
      if (!sample->done) live.push_back(sample.get());
    }
  }
  for (SampleState* sample : live) {
    SampleOutput event;
    event.error = absl::UnavailableError(absl::StrCat(error.message(), "; ", ready.message()));
    Finish(*sample, event, FinishReason::kError);
  }
}

void Engine::Impl::HandOffAll(const absl::Status& error) {
  std::vector<SampleState*> live;  // Finish() may destroy a request with its last sample
  for (auto& [id, r] : requests) {
    for (auto& sample : r->samples) {
      if (!sample->done && !r->cancel) live.push_back(sample.get());
    }
  }
  for (SampleState* sample : live) {
    SampleOutput event;
    event.error = absl::UnavailableError(
        absl::StrCat("this replica's cluster was lost: ", error.message()));
    event.resumable = true;
    event.held = std::move(sample->held);
    ++handed_off;
    Finish(*sample, event, FinishReason::kError);
  }
  PublishStats();
}

void Engine::Impl::PublishStats() {
  std::lock_guard<std::mutex> lock(mu);
  stats.running = scheduler.num_running();
  stats.waiting = scheduler.num_waiting();
  for (RequestState* r : gated) {
    for (auto& sample : r->samples) stats.waiting += sample->queued ? 0 : 1;
  }
  stats.kv_blocks = blocks.num_blocks();
  stats.kv_blocks_free = blocks.num_available();
  stats.preemptions = scheduler.preemptions();
  stats.prefix_query_blocks = blocks.query_blocks();
  stats.prefix_hit_blocks = blocks.hit_blocks();
  stats.steps = steps;
  stats.step_seconds = step_seconds;
  stats.computed_tokens = computed_tokens;
  stats.cluster_failures = cluster_failures;
  stats.recoveries = recoveries;
  stats.sequence_faults = sequence_faults;
  stats.handed_off = handed_off;
}

void Engine::Impl::Intake() {
  std::vector<std::unique_ptr<RequestState>> arrived;
  std::vector<uint64_t> cancelled;
  {
    std::lock_guard<std::mutex> lock(mu);
    arrived.swap(inbox);
    cancelled.swap(cancels);
  }
  for (auto& request : arrived) Accept(std::move(request));
  for (uint64_t id : cancelled) {
    if (auto it = requests.find(id); it != requests.end()) it->second->cancel = true;
  }
}

void Engine::Impl::ExpireQueued(const absl::Status& why) {
  const auto now = std::chrono::steady_clock::now();
  if (options.max_queue_time.count() <= 0 || now < next_expiry_check) return;
  next_expiry_check = now + std::chrono::milliseconds(50);
  std::vector<RequestState*> expired;
  for (auto& [id, r] : requests) {
    if (now - r->arrived < options.max_queue_time) continue;
    const bool started = std::any_of(r->samples.begin(), r->samples.end(), [](const auto& s) {
      return s->computed || s->seq.in_flight;
    });
    if (!started) expired.push_back(r.get());
  }
  for (RequestState* r : expired) {
    const double waited = std::chrono::duration<double>(now - r->arrived).count();
    const absl::Status error = absl::UnavailableError(absl::StrCat(
        "the request waited ", absl::SixDigits(waited), " s in the queue without starting",
        why.ok() ? std::string(" (the server is busy)")
                 : absl::StrCat(" (the cluster is recovering: ", why.message(), ")"),
        "; retry later"));
    std::vector<SampleState*> live;  // Finish() may destroy the request with its last sample
    for (auto& sample : r->samples) {
      if (!sample->done) live.push_back(sample.get());
    }
    for (SampleState* sample : live) {
      SampleOutput event;
      event.error = error;
      Finish(*sample, event, FinishReason::kError);
    }
  }
}

void Engine::Impl::Loop() {
  std::deque<InFlight> in_flight;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu);
      if (in_flight.empty() && inbox.empty() && cancels.empty() && !stopping &&
          requests.empty() && !scheduler.has_pending_releases()) {
        wake.wait(lock, [&] { return stopping || !inbox.empty() || !cancels.empty(); });
      }
      if (stopping) break;
    }
    Intake();
    ProcessCancels();
    ExpireQueued(absl::OkStatus());
    ReleaseGated();

    while (static_cast<int>(in_flight.size()) < max_in_flight) {
      std::optional<ScheduledStep> step = scheduler.Schedule();
      if (!step) break;
      for (size_t i = 0; i < step->seqs.size(); ++i) {
        SampleState* sample = SampleOf(step->seqs[i]);
        if (sample->cached_prompt_tokens < 0) {
          virtual_time = std::max(virtual_time, step->seqs[i]->arrival);
          sample->cached_prompt_tokens = step->input.seqs[i].num_cached;
          sample->queue_seconds = std::chrono::duration<double>(
                                      std::chrono::steady_clock::now() - sample->request->arrived)
                                      .count();
        }
      }
      for (Sequence* seq : step->seqs) {
        if (SampleOf(seq)->request->request.return_logits) step->input.return_logits = true;
      }
      absl::StatusOr<Executor::Ticket> ticket = executor.Submit(step->input);
      if (!ticket.ok()) {
        OnStepFailed(*step, ticket.status(), in_flight);
        break;
      }
      in_flight.push_back({*std::move(step), *ticket});
    }
    PublishStats();
    if (in_flight.empty()) {
      if (!requests.empty()) {
        // Requests exist but nothing could be scheduled. With nothing in flight every block is
        // free or evictable, so this should not last; wait briefly rather than spin.
        std::unique_lock<std::mutex> lock(mu);
        wake.wait_for(lock, std::chrono::milliseconds(5));
      }
      continue;
    }

    InFlight f = std::move(in_flight.front());
    in_flight.pop_front();
    absl::StatusOr<StepOutput> out = executor.Wait(f.ticket);
    if (!out.ok()) {
      OnStepFailed(f.step, out.status(), in_flight);
      continue;
    }
    scheduler.Complete(f.step);
    for (Sequence* seq : f.step.seqs) SampleOf(seq)->computed = true;
    ++steps;
    computed_tokens += f.step.num_tokens;
    step_seconds += out->wall_seconds;
    if (options.on_step) {
      options.on_step({f.step.num_tokens, static_cast<int64_t>(f.step.seqs.size()),
                       out->wall_seconds, out->max_compute_seconds});
    }
    const int64_t vocab = executor.config().vocab_size;
    size_t k = 0;
    for (size_t i = 0; i < f.step.seqs.size(); ++i) {
      if (!f.step.input.seqs[i].sample) continue;
      SampleState& sample = *SampleOf(f.step.seqs[i]);
      const size_t index = k++;
      if (sample.request->cancel) continue;  // ProcessCancels ends it below
      if (index >= out->tokens.size()) continue;
      std::vector<float> logits;
      if (sample.request->request.return_logits &&
          out->logits.size() >= (index + 1) * static_cast<size_t>(vocab)) {
        logits.assign(out->logits.begin() + index * vocab, out->logits.begin() + (index + 1) * vocab);
      }
      if (out->tokens[index] == kNonFiniteLogits) {
        SampleOutput event;
        event.error = absl::InternalError(
            "the model's logits for this sequence are not finite (NaN or infinity: a numerical "
            "overflow); it is ended, the others go on");
        ++sequence_faults;
        Finish(sample, event, FinishReason::kError);
        continue;
      }
      OnToken(sample, out->tokens[index],
              index < out->logprobs.size() ? out->logprobs[index] : std::nullopt,
              std::move(logits));
    }
    ProcessCancels();
    ReleaseGated();
    PublishStats();
  }

  // Shutting down: everything left ends as cancelled.
  for (InFlight& f : in_flight) executor.Wait(f.ticket).IgnoreError();
  for (auto& [id, r] : requests) {
    for (auto& sample : r->samples) {
      if (sample->done) continue;
      SampleOutput event;
      event.request_id = r->id;
      event.index = sample->index;
      event.finish = FinishReason::kCancelled;
      r->on_output(event);
    }
  }
  requests.clear();
}

}  // namespace strata::engine

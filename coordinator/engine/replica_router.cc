#include "coordinator/engine/replica_router.h"

#include <algorithm>
#include <limits>
#include <random>

#include "absl/strings/str_cat.h"

namespace strata::engine {
namespace {

uint64_t Mix(uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

struct ReplicaRouter::Routed {
  struct Part {
    size_t replica = 0;
    uint64_t engine_id = 0;
  };
  uint64_t id = 0;
  GenerationRequest request;  // with its seed fixed, so a continuation draws the same tokens
  OutputCallback on_output;
  std::vector<Part> parts;  // the engine requests carrying its samples
  std::vector<std::vector<int32_t>> delivered;  // per sample
  std::vector<std::string> held;                // per sample, when handed off
  std::vector<bool> reported;                   // its prompt figures went out
  int live = 0;
  bool cancelled = false;
};

ReplicaRouter::ReplicaRouter(std::vector<Replica> replicas, ReplicaRouterOptions options)
    : replicas_(std::move(replicas)), options_(options) {}

ReplicaRouter::~ReplicaRouter() = default;

absl::StatusOr<std::unique_ptr<ReplicaRouter>> ReplicaRouter::Create(
    std::vector<Replica> replicas, ReplicaRouterOptions options) {
  if (replicas.empty()) return absl::InvalidArgumentError("replica router: no replicas");
  for (const Replica& r : replicas) {
    if (r.executor == nullptr || r.engine == nullptr) {
      return absl::InvalidArgumentError("replica router: a replica without engine or executor");
    }
    if (r.executor->config().vocab_size != replicas[0].executor->config().vocab_size) {
      return absl::InvalidArgumentError("replica router: replicas of different models");
    }
  }
  return std::unique_ptr<ReplicaRouter>(new ReplicaRouter(std::move(replicas), options));
}

absl::StatusOr<uint64_t> ReplicaRouter::Add(GenerationRequest request, OutputCallback on_output) {
  if (!request.seed) {
    static thread_local std::mt19937_64 random{std::random_device{}()};
    request.seed = random();
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto r = std::make_unique<Routed>();
  r->id = next_id_++;
  r->on_output = std::move(on_output);
  const size_t n = static_cast<size_t>(std::max(request.n, 1));
  r->delivered.resize(n);
  r->held.resize(n);
  r->reported.assign(n, false);
  r->live = static_cast<int>(n);
  r->request = std::move(request);
  const size_t replica = Pick(r->request.prompt, -1);
  Routed& routed = *r;
  routed_.emplace(routed.id, std::move(r));
  if (absl::Status submitted = Submit(routed, replica, -1); !submitted.ok()) {
    routed_.erase(routed.id);
    return submitted;
  }
  return routed.id;
}

void ReplicaRouter::Cancel(uint64_t request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = routed_.find(request_id);
  if (it == routed_.end()) return;
  it->second->cancelled = true;
  for (const Routed::Part& part : it->second->parts) {
    replicas_[part.replica].engine->Cancel(part.engine_id);
  }
}

size_t ReplicaRouter::Pick(const std::vector<int32_t>& prompt, int avoid) const {
  if (replicas_.size() == 1) return 0;
  std::vector<size_t> candidates;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    if (static_cast<int>(i) != avoid && replicas_[i].executor->health().ok()) {
      candidates.push_back(i);
    }
  }
  if (candidates.empty()) {  // none healthy: wait on another replica's recovery
    for (size_t i = 0; i < replicas_.size(); ++i) {
      if (static_cast<int>(i) != avoid) candidates.push_back(i);
    }
  }
  std::vector<int64_t> load(replicas_.size(), 0);
  size_t least = candidates[0];
  for (size_t i : candidates) {
    const EngineStats s = replicas_[i].engine->stats();
    load[i] = s.running + s.waiting;
    if (load[i] < load[least]) least = i;
  }
  // Prefix affinity: the replica the prompt's first KV block prefers.
  const size_t block = static_cast<size_t>(replicas_[0].executor->kv_block_size());
  if (prompt.size() >= block) {
    uint64_t key = 0xcbf29ce484222325ull;
    for (size_t t = 0; t < block; ++t) key = Mix(key ^ static_cast<uint32_t>(prompt[t]));
    size_t preferred = candidates[0];
    uint64_t best = 0;
    for (size_t i : candidates) {
      const uint64_t score = Mix(key ^ (0x100000001b3ull * (i + 1)));
      if (score >= best) {
        best = score;
        preferred = i;
      }
    }
    if (load[preferred] <= load[least] + options_.affinity_slack) return preferred;
  }
  return least;
}

absl::Status ReplicaRouter::Submit(Routed& r, size_t replica, int sample) {
  GenerationRequest g = r.request;
  if (sample >= 0) {
    g.n = 1;
    g.first_stream = r.request.first_stream + static_cast<uint32_t>(sample);
    g.resume_output = r.delivered[sample];
    g.resume_held = r.held[sample];
  }
  const uint64_t id = r.id;
  auto engine_id = replicas_[replica].engine->Add(
      std::move(g), [this, id, replica, sample](const SampleOutput& event) {
        std::lock_guard<std::mutex> lock(mu_);
        bool keep = true;
        OnEvent(id, replica, sample, event, keep);
        return keep;
      });
  if (!engine_id.ok()) return engine_id.status();
  r.parts.push_back({replica, *engine_id});
  return absl::OkStatus();
}

void ReplicaRouter::OnEvent(uint64_t id, size_t replica, int sample, const SampleOutput& event,
                            bool& keep) {
  auto it = routed_.find(id);
  if (it == routed_.end()) {
    keep = false;
    return;
  }
  Routed& r = *it->second;
  const int index = sample >= 0 ? sample : event.index;
  SampleOutput out = event;
  if (event.finish == FinishReason::kError && event.resumable) {
    if (!r.cancelled) {
      r.held[index] = event.held;
      const size_t to = Pick(r.request.prompt, static_cast<int>(replica));
      const absl::Status moved = Submit(r, to, index);
      if (moved.ok()) {
        ++moved_;
        return;
      }
      out.error = absl::UnavailableError(absl::StrCat(
          event.error.message(), "; resuming it on another replica failed: ", moved.message()));
    }
    out.resumable = false;
    out.text = event.held;
    out.held.clear();
  }
  out.request_id = r.id;
  out.index = index;
  if (r.reported[index]) {  // a continuation: its prompt was reported by the first replica
    out.prompt_tokens = 0;
    out.cached_prompt_tokens = 0;
    out.queue_seconds = 0;
  } else if (out.prompt_tokens > 0) {
    r.reported[index] = true;
  }
  r.delivered[index].insert(r.delivered[index].end(), out.token_ids.begin(), out.token_ids.end());
  keep = r.on_output(out);
  if (!keep && !r.cancelled) {
    r.cancelled = true;  // the client is gone: every part of the request stops
    for (const Routed::Part& part : r.parts) {
      if (part.replica != replica) replicas_[part.replica].engine->Cancel(part.engine_id);
    }
  }
  if (out.finish != FinishReason::kNone && --r.live == 0) routed_.erase(it);
}

EngineStats ReplicaRouter::stats() const {
  EngineStats total;
  for (const Replica& replica : replicas_) {
    const EngineStats s = replica.engine->stats();
    total.running += s.running;
    total.waiting += s.waiting;
    total.kv_blocks += s.kv_blocks;
    total.kv_blocks_free += s.kv_blocks_free;
    total.preemptions += s.preemptions;
    total.prefix_query_blocks += s.prefix_query_blocks;
    total.prefix_hit_blocks += s.prefix_hit_blocks;
    total.steps += s.steps;
    total.step_seconds += s.step_seconds;
    total.computed_tokens += s.computed_tokens;
    total.cluster_failures += s.cluster_failures;
    total.recoveries += s.recoveries;
    total.sequence_faults += s.sequence_faults;
    total.handed_off += s.handed_off;
  }
  return total;
}

int64_t ReplicaRouter::max_model_len() const {
  int64_t len = std::numeric_limits<int64_t>::max();
  for (const Replica& r : replicas_) len = std::min(len, r.engine->max_model_len());
  return len;
}

absl::Status ReplicaRouter::health() const {
  absl::Status first;
  for (const Replica& r : replicas_) {
    absl::Status h = r.executor->health();
    if (h.ok()) return h;
    if (first.ok()) first = std::move(h);
  }
  return first;
}

std::vector<RankStatus> ReplicaRouter::ranks() const {
  std::vector<RankStatus> all;
  for (const Replica& r : replicas_) {
    std::vector<RankStatus> ranks = r.executor->ranks();
    const int offset = static_cast<int>(all.size());
    for (RankStatus& rank : ranks) {
      rank.rank += offset;
      all.push_back(std::move(rank));
    }
  }
  return all;
}

int64_t ReplicaRouter::moved() const {
  std::lock_guard<std::mutex> lock(mu_);
  return moved_;
}

}  // namespace strata::engine

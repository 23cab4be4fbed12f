// ReplicaRouter: several data-parallel replicas of one model (each an engine over its own
// worker group) behind one request interface, the one the gateway serves from.
//
// Routing: among the replicas whose cluster is healthy, a request goes to the one its prompt's
// first KV block prefers (rendezvous hashing: requests sharing a system prompt meet the same
// prefix cache) unless that replica is busier than the least-loaded one by more than
// `affinity_slack` sequences; then to the least loaded.
//
// Failover: engines run with EngineOptions::hand_off_on_failure. When a replica's cluster is
// lost its engine ends every sample with a resumable error; the router resubmits each to a
// healthy replica as a continuation (the prompt plus the tokens already delivered, the same
// sampling stream), so a greedy or seeded stream continues with exactly the tokens it would
// have produced, and the client sees one uninterrupted stream. With no healthy replica the
// continuation queues on another replica (or the same one) and resumes when its cluster is
// back, within that engine's queue bound; past it the sample ends with an explicit error.
//
// One replica is a plain pass-through. Thread-safe. Output callbacks run under the router's
// lock: they must not call the router. Destroy the engines before the router (their last
// events come to it).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "common/executor.h"
#include "coordinator/engine/engine.h"

namespace strata::engine {

struct Replica {
  Executor* executor = nullptr;
  Engine* engine = nullptr;  // started with hand_off_on_failure when there are several
};

struct ReplicaRouterOptions {
  int64_t affinity_slack = 8;  // sequences a preferred replica may be busier than the least
};

class ReplicaRouter {
 public:
  // `replicas` serve the same model (same vocabulary and context); at least one.
  static absl::StatusOr<std::unique_ptr<ReplicaRouter>> Create(std::vector<Replica> replicas,
                                                               ReplicaRouterOptions options = {});
  ~ReplicaRouter();
  ReplicaRouter(const ReplicaRouter&) = delete;
  ReplicaRouter& operator=(const ReplicaRouter&) = delete;

  // As Engine::Add / Engine::Cancel; ids are the router's own.
  absl::StatusOr<uint64_t> Add(GenerationRequest request, OutputCallback on_output);
  void Cancel(uint64_t request_id);

  // The engines' statistics, summed (handed_off: samples moved between replicas).
  EngineStats stats() const;
  int64_t max_model_len() const;  // the smallest replica's
  // OK when any replica's cluster is healthy; else the first replica's error.
  absl::Status health() const;
  // Every replica's ranks, numbered across replicas (replica r's rank k is r * world + k).
  std::vector<RankStatus> ranks() const;
  const ModelConfig& config() const { return replicas_[0].executor->config(); }
  int64_t weight_bytes() const { return replicas_[0].executor->weight_bytes(); }
  size_t num_replicas() const { return replicas_.size(); }
  int64_t moved() const;  // samples resumed on another replica

 private:
  struct Routed;
  ReplicaRouter(std::vector<Replica> replicas, ReplicaRouterOptions options);

  // The replica for a prompt; `avoid` (-1: none) is skipped when another is healthy.
  size_t Pick(const std::vector<int32_t>& prompt, int avoid) const;
  // Submits (part of) `r` to replica `replica`: all of its samples when `sample` < 0, else a
  // continuation of that one sample. Called with mu_ held.
  absl::Status Submit(Routed& r, size_t replica, int sample);
  void OnEvent(uint64_t id, size_t replica, int sample, const SampleOutput& event, bool& keep);

  const std::vector<Replica> replicas_;
  const ReplicaRouterOptions options_;
  mutable std::mutex mu_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Routed>> routed_;
  int64_t moved_ = 0;
};

}  // namespace strata::engine

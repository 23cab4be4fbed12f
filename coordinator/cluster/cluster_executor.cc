#include "coordinator/cluster/cluster_executor.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/status.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"
#include "proto/cluster_protocol.h"
#include "proto/grpc_status.h"
#include "proto/step_codec.h"
#include "worker/model/model_registry.h"
#include "strata/v1/worker.grpc.pb.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;
using StepStream = grpc::ClientReaderWriter<v1::StepRequest, v1::StepResult>;

// How often the watcher looks at leases and step deadlines.
constexpr std::chrono::milliseconds kWatchInterval(50);
// How long a silent rank gets to answer a health probe.
constexpr std::chrono::milliseconds kHealthProbeTimeout(300);
// Pause between failed recovery attempts.
constexpr std::chrono::milliseconds kRecoveryBackoff(1000);

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// One rank's worker and its step stream.
struct Rank {
  int rank = 0;
  uint64_t worker_id = 0;
  std::string host;
  std::unique_ptr<v1::WorkerService::Stub> stub;
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<StepStream> stream;
  std::thread reader;
  int64_t steps = 0;            // guarded by State::mu
  double compute_seconds = 0;   // guarded by State::mu

  std::string Name() const { return absl::StrCat("rank ", rank, " (worker ", worker_id, " at ", host, ")"); }
};

struct Pending {
  size_t acks_left = 0;
  std::vector<bool> answered;
  StepOutput output;
  absl::Status error;
  Clock::time_point start;
  Clock::time_point deadline;
  bool done = false;
};

// Picks tp x pp live workers: each stage's TP group from one node, stages in node order.
absl::StatusOr<std::vector<WorkerInfo>> ChooseWorkers(const std::vector<WorkerInfo>& snapshot,
                                                      int tp, int pp) {
  std::map<std::string, std::vector<WorkerInfo>> by_node;  // ordered: stable stage order
  for (const WorkerInfo& w : snapshot) {
    if (w.alive) by_node[w.inventory.node_name].push_back(w);
  }
  std::vector<WorkerInfo> chosen;
  std::vector<std::string> seen;
  for (auto& [node, workers] : by_node) {
    seen.push_back(absl::StrCat(node.empty() ? "(no node name)" : node, ": ", workers.size()));
    for (size_t i = 0; i + tp <= workers.size() && chosen.size() < size_t(tp) * pp; i += tp) {
      chosen.insert(chosen.end(), workers.begin() + i, workers.begin() + i + tp);
    }
  }
  if (chosen.size() < size_t(tp) * pp) {
    return absl::FailedPreconditionError(absl::StrCat(
        "need ", pp, " stage(s) of ", tp, " live workers on one node each; live workers by node: ",
        seen.empty() ? "none" : absl::StrJoin(seen, ", ")));
  }
  return chosen;
}

}  // namespace

struct ClusterExecutor::State {
  State(Membership& m, ExecutorOptions o) : membership(m), options(std::move(o)) {}

  Membership& membership;
  const ExecutorOptions options;
  ModelConfig config;
  ModelFootprint footprint;  // of one rank at TP = options.tp

  mutable std::mutex mu;
  mutable std::condition_variable changed;
  bool ready = false;
  absl::Status broken = absl::UnavailableError("not loaded yet");
  bool stopping = false;
  uint64_t generation = 0;     // the loaded generation
  uint64_t load_attempts = 0;  // every attempt rendezvous under its own number
  ShardPlan plan;
  int64_t kv_blocks = 0;
  std::vector<std::unique_ptr<Rank>> ranks;
  std::map<uint64_t, Pending> pending;
  uint64_t next_step = 1;

  std::mutex submit_mu;  // one Submit at a time: every rank sees steps in the same order
  std::thread watcher;

  absl::Status Load(uint64_t generation);
  // Fails every pending step with `why` and cancels the streams; `culprits` (worker ids) are
  // marked dead so a recovery does not pick them again before they re-register.
  void Break(const absl::Status& why, const std::vector<uint64_t>& culprits = {});
  void OnResult(size_t rank, v1::StepResult& result);
  void ReadLoop(Rank* rank, uint64_t generation);
  void Watch();
  void CloseRanks(std::vector<std::unique_ptr<Rank>>& ranks);
};

absl::Status ClusterExecutor::State::Load(uint64_t gen) {
  const int world = options.tp * options.pp;
  STRATA_ASSIGN_OR_RETURN(std::vector<WorkerInfo> workers,
                          ChooseWorkers(membership.Snapshot(), options.tp, options.pp));

  ClusterSpec spec;
  spec.nodes = options.pp;
  spec.devices_per_node = options.tp;
  spec.memory_per_device = INT64_MAX;
  const DeviceInventory& first = workers[0].inventory;
  for (const WorkerInfo& w : workers) {
    for (int64_t bytes : w.inventory.memory_bytes) {
      spec.memory_per_device = std::min(spec.memory_per_device, bytes);
    }
    if (w.inventory.device_kind != first.device_kind || w.inventory.kv_dtype != first.kv_dtype) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the chosen workers differ: ", DeviceKindName(first.device_kind), " (KV ",
          DTypeName(first.kv_dtype), ") and ", DeviceKindName(w.inventory.device_kind), " (KV ",
          DTypeName(w.inventory.kv_dtype), "); one model group runs on one kind of device"));
    }
  }
  // Host memory holds the OS and the coordinator too; a device only the workspace.
  if (first.device_kind == DeviceKind::kCpu) spec.activation_reserve = int64_t{256} << 20;
  spec.kv_dtype = first.kv_dtype;
  PlanOptions plan_options;
  plan_options.kv_block_size = options.kv_block_size;
  plan_options.min_kv_tokens = options.min_kv_tokens;
  STRATA_ASSIGN_OR_RETURN(ShardPlan new_plan, PlanShards(config, footprint, spec, plan_options));
  int64_t blocks = INT64_MAX;
  for (const RankPlan& r : new_plan.ranks) blocks = std::min(blocks, r.kv_blocks);
  if (options.max_kv_blocks > 0) blocks = std::min(blocks, options.max_kv_blocks);

  std::vector<std::unique_ptr<Rank>> new_ranks;
  auto credentials = ChannelCredentialsFor(options.tls);
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  ApplyTls(options.tls, args);
  for (int r = 0; r < world; ++r) {
    auto rank = std::make_unique<Rank>();
    rank->rank = r;
    rank->worker_id = workers[r].id;
    rank->host = workers[r].host;
    rank->stub = v1::WorkerService::NewStub(
        grpc::CreateCustomChannel(rank->host, *credentials, args));
    new_ranks.push_back(std::move(rank));
  }

  // Load every rank at once: they meet each other in their groups' rendezvous.
  STRATA_LOG_INFO("generation {}: loading {} on {} rank(s) (TP {} x PP {}), {} KV blocks of {}",
                  gen, options.model, world, options.tp, options.pp, blocks,
                  options.kv_block_size);
  std::vector<absl::Status> results(world);
  std::vector<std::thread> loaders;
  for (int r = 0; r < world; ++r) {
    loaders.emplace_back([&, r] {
      const RankPlan& p = new_plan.ranks[r];
      Rank& rank = *new_ranks[r];
      v1::LoadRequest request;
      request.set_protocol_version(kClusterProtocolVersion);
      request.set_generation(gen);
      request.set_comm_timeout_ms(static_cast<uint32_t>(options.comm_timeout.count()));
      request.set_worker_id(rank.worker_id);
      request.set_session_token(membership.SessionToken(rank.worker_id));
      v1::ShardAssignment* a = request.mutable_shard();
      a->set_model(options.model);
      a->set_weight_dtype(options.weight_dtype);
      a->set_tp_rank(static_cast<int32_t>(p.tp_rank));
      a->set_tp_size(options.tp);
      a->set_pp_rank(static_cast<int32_t>(p.stage));
      a->set_pp_size(options.pp);
      a->set_layer_begin(p.layer_begin);
      a->set_layer_end(p.layer_end);
      a->set_kv_blocks(blocks);
      a->set_kv_block_size(options.kv_block_size);
      a->set_threads(options.threads_per_worker);
      a->set_expected_weight_bytes(p.weight_bytes);
      a->set_max_step_tokens(options.max_step_tokens);
      a->set_max_logit_rows(static_cast<int32_t>(options.max_logit_rows));
      a->set_expert_parallel(options.expert_parallel);
      grpc::ClientContext context;
      // Fail fast when a worker is gone (a recovery retries once its lease has expired).
      context.set_deadline(std::chrono::system_clock::now() + options.load_timeout);
      auto reader = rank.stub->Load(&context, request);
      v1::LoadProgress progress;
      bool ready = false;
      while (reader->Read(&progress)) {
        if (progress.ready()) {
          ready = true;
          STRATA_LOG_INFO("{}: layers [{}, {}) loaded, {} of weights, {} KV blocks, {:.2f} s",
                          rank.Name(), p.layer_begin, p.layer_end,
                          FormatBytes(progress.weight_bytes()), progress.kv_blocks(),
                          progress.seconds());
        } else {
          STRATA_LOG_DEBUG("{}: {} {}/{}", rank.Name(), progress.phase(),
                           FormatBytes(progress.bytes_done()), FormatBytes(progress.bytes_total()));
        }
      }
      absl::Status status = FromGrpcStatus(reader->Finish(), absl::StrCat(rank.Name(), ": load"));
      if (status.ok() && !ready) {
        status = absl::InternalError(absl::StrCat(rank.Name(), ": load ended without ready"));
      }
      results[r] = status;
    });
  }
  for (std::thread& t : loaders) t.join();
  for (const absl::Status& s : results) {
    if (!s.ok()) return s;
  }

  for (auto& rank : new_ranks) {
    rank->context = std::make_unique<grpc::ClientContext>();
    rank->stream = rank->stub->Step(rank->context.get());
    rank->reader = std::thread([this, r = rank.get(), gen] { ReadLoop(r, gen); });
  }
  std::lock_guard<std::mutex> lock(mu);
  ranks = std::move(new_ranks);
  plan = std::move(new_plan);
  kv_blocks = blocks;
  generation = gen;
  ready = true;
  broken = absl::OkStatus();
  changed.notify_all();
  STRATA_LOG_INFO("generation {}: cluster ready", gen);
  return absl::OkStatus();
}

void ClusterExecutor::State::Break(const absl::Status& why,
                                   const std::vector<uint64_t>& culprits) {
  for (uint64_t id : culprits) membership.MarkDead(id, std::string(why.message()));
  std::lock_guard<std::mutex> lock(mu);
  if (!ready) return;  // already broken: keep the first cause
  ready = false;
  broken = absl::UnavailableError(absl::StrCat("cluster failed: ", why.message()));
  STRATA_LOG_ERROR("{}", broken.ToString());
  for (auto& [id, p] : pending) {
    if (!p.done) {
      p.error = broken;
      p.done = true;
    }
  }
  for (auto& rank : ranks) {
    if (rank->context != nullptr) rank->context->TryCancel();
  }
  changed.notify_all();
}

void ClusterExecutor::State::OnResult(size_t rank, v1::StepResult& result) {
  std::unique_lock<std::mutex> lock(mu);
  auto it = pending.find(result.step_id());
  if (it == pending.end() || it->second.done || rank >= it->second.answered.size() ||
      rank >= ranks.size() || it->second.answered[rank]) {
    return;  // failed already, or a stray answer
  }
  Pending& p = it->second;
  p.answered[rank] = true;
  if (result.code() != 0) {
    const auto code = static_cast<absl::StatusCode>(result.code());
    const absl::Status error(code, absl::StrCat(ranks[rank]->Name(), ": ", result.error()));
    if (p.error.ok()) p.error = error;
    // A rank that refused the step (it checks a step whole before touching state) is fine;
    // one that failed inside it (a collective broke, it is shutting down, it lost its shard)
    // leaves the group in an unknown state: reload.
    if (code != absl::StatusCode::kInvalidArgument && code != absl::StatusCode::kOutOfRange) {
      lock.unlock();
      Break(error, {});
      return;
    }
  }
  if (result.has_tokens()) DecodeStepOutput(result, p.output);
  p.output.max_compute_seconds = std::max(p.output.max_compute_seconds, result.compute_seconds());
  ++ranks[rank]->steps;
  ranks[rank]->compute_seconds += result.compute_seconds();
  if (--p.acks_left == 0) {
    p.done = true;
    p.output.wall_seconds = SecondsSince(p.start);
    changed.notify_all();
  }
}

void ClusterExecutor::State::ReadLoop(Rank* rank, uint64_t gen) {
  v1::StepResult result;
  while (rank->stream->Read(&result)) OnResult(static_cast<size_t>(rank->rank), result);
  const grpc::Status status = rank->stream->Finish();
  {
    std::lock_guard<std::mutex> lock(mu);
    if (stopping || generation != gen || !ready) return;
  }
  Break(absl::UnavailableError(absl::StrCat(rank->Name(), ": step stream ended (",
                                            status.error_message().empty()
                                                ? "worker gone"
                                                : status.error_message(),
                                            ")")),
        {rank->worker_id});
}

void ClusterExecutor::State::CloseRanks(std::vector<std::unique_ptr<Rank>>& old) {
  for (auto& rank : old) {
    if (rank->context != nullptr) rank->context->TryCancel();
  }
  for (auto& rank : old) {
    if (rank->reader.joinable()) rank->reader.join();
  }
  old.clear();
}

void ClusterExecutor::State::Watch() {
  std::unique_lock<std::mutex> lock(mu);
  while (!stopping) {
    changed.wait_for(lock, kWatchInterval, [&] { return stopping; });
    if (stopping) break;
    if (ready) {
      // Leases: every rank's worker must still be alive.
      absl::Status why;
      std::vector<uint64_t> culprits;
      std::map<uint64_t, WorkerInfo> alive;
      lock.unlock();
      for (WorkerInfo& w : membership.Snapshot()) alive[w.id] = std::move(w);
      lock.lock();
      for (const auto& rank : ranks) {
        auto it = alive.find(rank->worker_id);
        if (it == alive.end() || !it->second.alive) {
          why = absl::UnavailableError(absl::StrCat(
              rank->Name(), " stopped heartbeating (lease ",
              membership.options().lease.count(), " ms)"));
          break;
        }
      }
      // Step deadlines: a rank that is alive but does not answer. Its peers wait for it in
      // their collectives and are silent too; the ones whose process answers a health probe
      // are not to blame.
      const auto now = Clock::now();
      std::vector<Rank*> silent;
      for (const auto& [id, p] : pending) {
        if (!why.ok() || p.done || now < p.deadline) continue;
        std::vector<std::string> names;
        for (size_t r = 0; r < p.answered.size() && r < ranks.size(); ++r) {
          if (p.answered[r]) continue;
          names.push_back(absl::StrCat(r));
          silent.push_back(ranks[r].get());
        }
        why = absl::DeadlineExceededError(absl::StrCat(
            "step ", id, ": rank(s) ", absl::StrJoin(names, ", "), " did not answer within ",
            options.step_timeout.count(), " ms"));
      }
      if (!silent.empty()) {
        lock.unlock();
        std::vector<std::string> unresponsive;
        for (Rank* rank : silent) {
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + kHealthProbeTimeout);
          v1::WorkerHealthReply reply;
          if (!rank->stub->Health(&context, v1::WorkerHealthRequest(), &reply).ok()) {
            culprits.push_back(rank->worker_id);
            unresponsive.push_back(absl::StrCat(rank->rank));
          }
        }
        if (culprits.empty()) {
          for (Rank* rank : silent) culprits.push_back(rank->worker_id);
        } else {
          why = absl::Status(why.code(), absl::StrCat(why.message(), "; rank(s) ",
                                                      absl::StrJoin(unresponsive, ", "),
                                                      " do not answer health probes either"));
        }
        lock.lock();
      }
      if (!why.ok()) {
        lock.unlock();
        Break(why, culprits);
        lock.lock();
      }
      continue;
    }
    if (!options.recover || generation == 0) continue;
    // Broken: recover once enough workers are alive again.
    lock.unlock();
    std::vector<std::unique_ptr<Rank>> old;
    {
      std::lock_guard<std::mutex> submit(submit_mu);
      std::lock_guard<std::mutex> state(mu);
      old = std::move(ranks);
    }
    // The failure may have been reported by a survivor (its collective broke) before the dead
    // worker's stream end or lease said who died: a rank whose process does not answer now is
    // counted dead, so the reload waits for its replacement instead of rendezvousing with it.
    for (const auto& rank : old) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + kHealthProbeTimeout);
      v1::WorkerHealthReply reply;
      if (!rank->stub->Health(&context, v1::WorkerHealthRequest(), &reply).ok()) {
        membership.MarkDead(rank->worker_id, "does not answer after the cluster failed");
      }
    }
    CloseRanks(old);
    absl::Status status = membership.WaitForAlive(options.tp * options.pp, kRecoveryBackoff);
    if (status.ok()) {
      uint64_t next;
      {
        std::lock_guard<std::mutex> state(mu);
        next = ++load_attempts;
      }
      STRATA_LOG_INFO("recovering: reloading the cluster as generation {}", next);
      std::lock_guard<std::mutex> submit(submit_mu);
      status = Load(next);
      if (!status.ok()) {
        STRATA_LOG_ERROR("recovery failed: {}", status.ToString());
        std::unique_lock<std::mutex> state(mu);
        broken = absl::UnavailableError(absl::StrCat("cluster recovering: ", status.message()));
        changed.wait_for(state, kRecoveryBackoff, [&] { return stopping; });
      }
    }
    lock.lock();
  }
}

ClusterExecutor::ClusterExecutor(std::unique_ptr<State> state) : state_(std::move(state)) {}

absl::StatusOr<std::unique_ptr<ClusterExecutor>> ClusterExecutor::Start(Membership& membership,
                                                                        ExecutorOptions options) {
  if (options.tp < 1 || options.pp < 1 || options.max_step_tokens < 1 ||
      options.max_logit_rows < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tp (", options.tp, "), pp (", options.pp, "), max_step_tokens (",
        options.max_step_tokens, ") and max_logit_rows (", options.max_logit_rows,
        ") must be at least 1"));
  }
  auto state = std::make_unique<State>(membership, std::move(options));
  State& s = *state;
  STRATA_ASSIGN_OR_RETURN(ModelContext model, OpenModel(s.options.model));
  s.config = model.config;
  FootprintOptions footprint;
  footprint.tp = s.options.tp;
  footprint.expert_parallel = s.options.expert_parallel;
  if (!s.options.weight_dtype.empty()) {
    STRATA_ASSIGN_OR_RETURN(footprint.weight_dtype, ParseWeightDType(s.options.weight_dtype));
  }
  STRATA_ASSIGN_OR_RETURN(s.footprint, ComputeFootprint(model, footprint));
  const int world = s.options.tp * s.options.pp;
  if (absl::Status alive = membership.WaitForAlive(world, s.options.worker_wait); !alive.ok()) {
    std::vector<std::string> seen;
    for (const WorkerInfo& w : membership.Snapshot()) {
      seen.push_back(absl::StrCat(w.id, "@", w.host, w.alive ? "" : " (dead)"));
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "waited ", s.options.worker_wait.count(), " ms for ", world, " worker(s) (TP ",
        s.options.tp, " x PP ", s.options.pp, "); registered: ",
        seen.empty() ? "none" : absl::StrJoin(seen, ", ")));
  }
  // GPU workers keep every matrix in bf16 whatever the checkpoint stores (a q4_0 file takes
  // 3.5x its size there): plan with that unless a conversion was asked for.
  if (!footprint.weight_dtype) {
    bool gpu = false;
    for (const WorkerInfo& w : membership.Snapshot()) {
      gpu = gpu || (w.alive && w.inventory.device_kind == DeviceKind::kCuda);
    }
    if (gpu) {
      footprint.weight_dtype = DType::kBF16;
      STRATA_ASSIGN_OR_RETURN(s.footprint, ComputeFootprint(model, footprint));
    }
  }
  {
    std::lock_guard<std::mutex> submit(s.submit_mu);
    s.load_attempts = 1;
    STRATA_RETURN_IF_ERROR(s.Load(1));
  }
  s.watcher = std::thread([&s] { s.Watch(); });
  return std::unique_ptr<ClusterExecutor>(new ClusterExecutor(std::move(state)));
}

ClusterExecutor::~ClusterExecutor() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stopping = true;
    for (auto& [id, p] : state_->pending) {
      if (!p.done) {
        p.error = absl::CancelledError("executor shut down");
        p.done = true;
      }
    }
    state_->changed.notify_all();
  }
  if (state_->watcher.joinable()) state_->watcher.join();
  std::vector<std::unique_ptr<Rank>> old;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    old = std::move(state_->ranks);
  }
  for (auto& rank : old) {
    if (rank->stream != nullptr) rank->stream->WritesDone();
  }
  state_->CloseRanks(old);
}

const ModelConfig& ClusterExecutor::config() const { return state_->config; }

const ShardPlan& ClusterExecutor::plan() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->plan;
}

int64_t ClusterExecutor::kv_blocks() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->kv_blocks;
}

int ClusterExecutor::kv_block_size() const { return state_->options.kv_block_size; }

int ClusterExecutor::pipeline_depth() const { return state_->options.pp; }

int64_t ClusterExecutor::max_step_tokens() const { return state_->options.max_step_tokens; }

int64_t ClusterExecutor::weight_bytes() const { return state_->footprint.total_bytes; }

uint64_t ClusterExecutor::generation() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->generation;
}

std::vector<RankStatus> ClusterExecutor::ranks() const {
  std::vector<RankStatus> out;
  std::map<uint64_t, bool> alive;
  for (const WorkerInfo& w : state_->membership.Snapshot()) alive[w.id] = w.alive;
  std::lock_guard<std::mutex> lock(state_->mu);
  for (const auto& rank : state_->ranks) {
    RankStatus r;
    r.rank = rank->rank;
    r.worker_id = rank->worker_id;
    r.host = rank->host;
    r.up = state_->ready && alive[rank->worker_id];
    r.steps = rank->steps;
    r.compute_seconds = rank->compute_seconds;
    out.push_back(std::move(r));
  }
  return out;
}

absl::Status ClusterExecutor::health() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->ready ? absl::OkStatus() : state_->broken;
}

absl::Status ClusterExecutor::WaitReady(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(state_->mu);
  if (!state_->changed.wait_for(lock, timeout,
                                [&] { return state_->ready || state_->stopping; }) ||
      !state_->ready) {
    return absl::DeadlineExceededError(absl::StrCat("cluster not ready after ", timeout.count(),
                                                    " ms: ", state_->broken.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<ClusterExecutor::Ticket> ClusterExecutor::Submit(const StepInput& step) {
  State& s = *state_;
  v1::StepRequest request;
  EncodeStep(step, request);

  std::lock_guard<std::mutex> submit(s.submit_mu);
  std::vector<Rank*> ranks;
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (!s.ready) return s.broken;
    id = s.next_step++;
    Pending& p = s.pending[id];
    p.acks_left = s.ranks.size();
    p.answered.assign(s.ranks.size(), false);
    p.start = Clock::now();
    p.deadline = p.start + s.options.step_timeout;
    for (auto& rank : s.ranks) ranks.push_back(rank.get());
  }
  request.set_step_id(id);
  for (Rank* rank : ranks) {
    if (!rank->stream->Write(request)) {
      s.Break(absl::UnavailableError(absl::StrCat(rank->Name(), ": cannot send step ", id)));
      break;
    }
  }
  return id;
}

absl::StatusOr<StepOutput> ClusterExecutor::Wait(Ticket ticket) {
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.mu);
  auto it = s.pending.find(ticket);
  if (it == s.pending.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown or already collected step ", ticket));
  }
  s.changed.wait(lock, [&] { return it->second.done; });
  Pending p = std::move(it->second);
  s.pending.erase(it);
  if (!p.error.ok()) return p.error;
  return std::move(p.output);
}

}  // namespace strata

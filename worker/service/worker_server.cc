#include "worker/service/worker_server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_context.h"
#include "proto/cluster_protocol.h"
#include "proto/grpc_status.h"
#include "strata/v1/worker.grpc.pb.h"
#include "worker/backend/backend.h"
#include "worker/comm/gloo_communicator.h"
#include "worker/comm/grpc_store.h"
#include "worker/model/model_runner.h"
#include "worker/model/step_batch.h"
#include "worker/sampling/sampler.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kShutdownGrace(500);
constexpr int kMaxMessageBytes = 512 << 20;
// Load progress is sent at most this often (and at every 5% of the weights).
constexpr std::chrono::milliseconds kProgressInterval(200);

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// What a worker keeps of one sequence between steps.
struct SequenceState {
  std::vector<int32_t> block_table;
  TokenHistory history;  // sampling rank only: the tokens the penalties count
};

// The loaded shard and the sequences it has seen.
struct Shard {
  uint64_t generation = 0;
  v1::ShardAssignment assignment;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<GlooCommunicator> tp_comm;  // this stage's TP group (tp_size > 1)
  std::unique_ptr<GlooCommunicator> pp_comm;  // this TP index across stages (pp_size > 1)
  std::unique_ptr<ModelRunner> runner;
  absl::flat_hash_map<uint64_t, SequenceState> sequences;
  std::vector<float> hidden, out, scratch, processed;

  bool is_sampler() const {
    return assignment.pp_rank() == assignment.pp_size() - 1 && assignment.tp_rank() == 0;
  }
};

absl::Status ValidateAssignment(const v1::ShardAssignment& a) {
  if (a.model().empty()) return absl::InvalidArgumentError("shard.model: empty");
  if (a.tp_size() < 1 || a.tp_rank() < 0 || a.tp_rank() >= a.tp_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard: tp_rank ", a.tp_rank(), " of tp_size ", a.tp_size()));
  }
  if (a.pp_size() < 1 || a.pp_rank() < 0 || a.pp_rank() >= a.pp_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard: pp_rank ", a.pp_rank(), " of pp_size ", a.pp_size()));
  }
  if (a.layer_begin() < 0 || a.layer_end() <= a.layer_begin()) {
    return absl::InvalidArgumentError(absl::StrCat("shard: layer range [", a.layer_begin(), ", ",
                                                   a.layer_end(), ") is empty or negative"));
  }
  if (a.kv_blocks() < 1 || a.kv_block_size() < 1 || a.kv_block_size() > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("shard: kv_blocks ", a.kv_blocks(),
                                                   " and kv_block_size ", a.kv_block_size(),
                                                   " must be positive (block size <= 1024)"));
  }
  if (a.threads() < 0 || a.threads() > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("shard: threads ", a.threads()));
  }
  return absl::OkStatus();
}

SamplingParams ToSamplingParams(const v1::SamplingOptions& s) {
  SamplingParams p;
  p.temperature = s.temperature();
  p.top_k = s.top_k();
  p.top_p = s.top_p() == 0.0f ? 1.0f : s.top_p();
  p.min_p = s.min_p();
  p.seed = s.seed();
  p.stream = s.stream();
  p.presence_penalty = s.presence_penalty();
  p.frequency_penalty = s.frequency_penalty();
  p.repetition_penalty = s.repetition_penalty() == 0.0f ? 1.0f : s.repetition_penalty();
  for (const auto& [id, bias] : s.logit_bias()) p.logit_bias.emplace_back(id, bias);
  std::sort(p.logit_bias.begin(), p.logit_bias.end());  // map order is unspecified
  p.logprobs = s.logprobs() ? s.top_logprobs() : -1;
  return p;
}

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(const WorkerServerOptions& options)
      : options_(options), store_(options.coordinator) {}

  grpc::Status Load(grpc::ServerContext* context, const v1::LoadRequest* request,
                    grpc::ServerWriter<v1::LoadProgress>* writer) override;
  grpc::Status Step(grpc::ServerContext* context,
                    grpc::ServerReaderWriter<v1::StepResult, v1::StepRequest>* stream) override;
  grpc::Status Release(grpc::ServerContext* context, const v1::ReleaseRequest* request,
                       v1::ReleaseReply* reply) override;
  grpc::Status Health(grpc::ServerContext* context, const v1::WorkerHealthRequest* request,
                      v1::WorkerHealthReply* reply) override;

  void DropShard() {
    std::lock_guard<std::mutex> lock(mu_);
    shard_.reset();
  }

 private:
  absl::StatusOr<std::unique_ptr<Shard>> LoadShard(const v1::LoadRequest& request,
                                                   grpc::ServerWriter<v1::LoadProgress>& writer);
  static absl::Status RunStep(Shard& shard, const v1::StepRequest& request,
                              v1::StepResult& result);

  const WorkerServerOptions options_;
  GrpcStore store_;
  std::mutex mu_;                 // guards shard_; held for a whole load or step
  std::unique_ptr<Shard> shard_;
  std::atomic<uint64_t> stream_epoch_{0};  // the newest Step stream wins
};

grpc::Status WorkerServiceImpl::Load(grpc::ServerContext*, const v1::LoadRequest* request,
                                     grpc::ServerWriter<v1::LoadProgress>* writer) {
  if (request->protocol_version() != kClusterProtocolVersion) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        absl::StrCat("protocol version ", request->protocol_version(),
                     " is not this worker's version ", kClusterProtocolVersion)));
  }
  if (absl::Status valid = ValidateAssignment(request->shard()); !valid.ok()) {
    return ToGrpcStatus(valid);
  }
  std::lock_guard<std::mutex> lock(mu_);
  shard_.reset();  // leave the old groups before joining new ones
  auto shard = LoadShard(*request, *writer);
  if (!shard.ok()) {
    STRATA_LOG_ERROR("load failed: {}", shard.status().ToString());
    return ToGrpcStatus(shard.status());
  }
  shard_ = *std::move(shard);
  return grpc::Status::OK;
}

absl::StatusOr<std::unique_ptr<Shard>> WorkerServiceImpl::LoadShard(
    const v1::LoadRequest& request, grpc::ServerWriter<v1::LoadProgress>& writer) {
  const auto start = Clock::now();
  const v1::ShardAssignment& a = request.shard();
  auto shard = std::make_unique<Shard>();
  shard->generation = request.generation();
  shard->assignment = a;
  STRATA_LOG_INFO("loading {} layers [{}, {}) as TP {}/{} PP {}/{} (generation {})", a.model(),
                  a.layer_begin(), a.layer_end(), a.tp_rank(), a.tp_size(), a.pp_rank(),
                  a.pp_size(), request.generation());

  v1::LoadProgress progress;
  progress.set_phase("rendezvous");
  progress.set_bytes_total(a.expected_weight_bytes());
  writer.Write(progress);
  GlooOptions gloo;
  gloo.hostname = options_.advertise_host;
  gloo.timeout = std::chrono::milliseconds(
      request.comm_timeout_ms() > 0 ? request.comm_timeout_ms() : 30000);
  if (a.tp_size() > 1) {
    gloo.rank = a.tp_rank();
    gloo.world_size = a.tp_size();
    gloo.store_prefix = absl::StrCat("g", request.generation(), "/tp/stage", a.pp_rank());
    STRATA_ASSIGN_OR_RETURN(shard->tp_comm, GlooCommunicator::Create(gloo, store_));
  }
  if (a.pp_size() > 1) {
    gloo.rank = a.pp_rank();
    gloo.world_size = a.pp_size();
    gloo.store_prefix = absl::StrCat("g", request.generation(), "/pp/tp", a.tp_rank());
    STRATA_ASSIGN_OR_RETURN(shard->pp_comm, GlooCommunicator::Create(gloo, store_));
  }

  shard->backend = MakeCpuBackend(a.threads() > 0 ? a.threads() : options_.default_threads);
  ModelLoadOptions load;
  load.layer_begin = a.layer_begin();
  load.layer_end = a.layer_end();
  if (!a.weight_dtype().empty()) {
    STRATA_ASSIGN_OR_RETURN(load.weight_dtype, ParseDType(a.weight_dtype()));
  }
  load.kv_blocks = a.kv_blocks();
  load.kv_block_size = a.kv_block_size();
  load.tp_rank = a.tp_rank();
  load.tp_size = a.tp_size();
  load.comm = shard->tp_comm.get();
  progress.set_phase("weights");
  auto last_sent = Clock::now();
  int64_t last_bytes = 0;
  load.on_progress = [&](int64_t bytes) {
    const int64_t step = std::max<int64_t>(1, a.expected_weight_bytes() / 20);
    if (bytes - last_bytes < step && Clock::now() - last_sent < kProgressInterval) return;
    progress.set_bytes_done(bytes);
    writer.Write(progress);
    last_sent = Clock::now();
    last_bytes = bytes;
  };
  STRATA_ASSIGN_OR_RETURN(shard->runner, LoadModel(a.model(), *shard->backend, load));

  v1::LoadProgress ready;
  ready.set_phase("ready");
  ready.set_ready(true);
  ready.set_bytes_done(shard->runner->weight_bytes());
  ready.set_bytes_total(shard->runner->weight_bytes());
  ready.set_weight_bytes(shard->runner->weight_bytes());
  ready.set_kv_blocks(shard->runner->kv_blocks());
  ready.set_seconds(SecondsSince(start));
  writer.Write(ready);
  STRATA_LOG_INFO("loaded {:.1f} MB of weights in {:.2f} s", shard->runner->weight_bytes() / 1e6,
                  ready.seconds());
  return shard;
}

grpc::Status WorkerServiceImpl::Step(
    grpc::ServerContext*, grpc::ServerReaderWriter<v1::StepResult, v1::StepRequest>* stream) {
  const uint64_t epoch = ++stream_epoch_;
  v1::StepRequest request;
  while (stream->Read(&request)) {
    if (stream_epoch_.load() != epoch) {
      return ToGrpcStatus(absl::AbortedError("superseded by a newer step stream"));
    }
    const auto start = Clock::now();
    v1::StepResult result;
    absl::Status status;
    {
      std::lock_guard<std::mutex> lock(mu_);
      status = shard_ == nullptr
                   ? absl::FailedPreconditionError("no shard is loaded (call Load first)")
                   : RunStep(*shard_, request, result);
    }
    result.set_step_id(request.step_id());
    result.set_compute_seconds(SecondsSince(start));
    if (!status.ok()) {
      result.clear_tokens();
      result.clear_logits();
      result.set_has_tokens(false);
      result.set_code(static_cast<int>(status.code()));
      result.set_error(absl::StrCat("step ", request.step_id(), ": ", status.message()));
    }
    if (!stream->Write(result)) break;
  }
  return grpc::Status::OK;
}

absl::Status WorkerServiceImpl::RunStep(Shard& shard, const v1::StepRequest& request,
                                        v1::StepResult& result) {
  ModelRunner& runner = *shard.runner;
  const ModelConfig& config = runner.config();
  const v1::ShardAssignment& a = shard.assignment;
  const int32_t block_size = static_cast<int32_t>(runner.kv_block_size());
  for (uint64_t id : request.release()) shard.sequences.erase(id);
  if (request.seqs_size() == 0) return absl::OkStatus();

  // Build and check everything before touching state: every rank sees the same request and
  // refuses it the same way, so none is left waiting in a collective.
  StepBatch batch;
  std::vector<std::vector<int32_t>> tables(request.seqs_size());
  std::vector<SamplingParams> sampling;
  std::vector<int> sampled_seq;  // request index of each sampled sequence
  for (int i = 0; i < request.seqs_size(); ++i) {
    const v1::SequenceStep& seq = request.seqs(i);
    if (seq.tokens().empty() || seq.num_cached() < 0 || seq.num_prompt_tokens() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence ", seq.seq_id(),
          ": needs at least one token, and num_cached and num_prompt_tokens >= 0"));
    }
    if (!seq.start()) {
      auto it = shard.sequences.find(seq.seq_id());
      if (it == shard.sequences.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sequence ", seq.seq_id(),
            " continues, but this worker has no block table for it (released, or never "
            "started: set start)"));
      }
      tables[i] = it->second.block_table;
    }
    tables[i].insert(tables[i].end(), seq.new_blocks().begin(), seq.new_blocks().end());
    batch.AddSequence(seq.tokens(), seq.num_cached(), tables[i], block_size,
                      /*all_logits=*/false);
    if (!seq.sample()) {
      batch.logit_rows.pop_back();
      continue;
    }
    SamplingParams params = ToSamplingParams(seq.sampling());
    if (absl::Status valid = params.Validate(config.vocab_size); !valid.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", seq.seq_id(), ": ", valid.message()));
    }
    sampling.push_back(std::move(params));
    sampled_seq.push_back(i);
  }
  STRATA_RETURN_IF_ERROR(batch.Validate(config.vocab_size, config.max_position_embeddings,
                                        runner.kv_blocks(), block_size));
  for (int i = 0; i < request.seqs_size(); ++i) {
    const v1::SequenceStep& seq = request.seqs(i);
    SequenceState& state = shard.sequences[seq.seq_id()];
    if (seq.start()) state.history.Clear();
    state.block_table = std::move(tables[i]);
    if (shard.is_sampler()) {
      for (int t = 0; t < seq.cached_tokens_size(); ++t) {
        state.history.Add(seq.cached_tokens(t), t >= seq.num_prompt_tokens());
      }
      for (int t = 0; t < seq.tokens_size(); ++t) {
        state.history.Add(seq.tokens(t), seq.num_cached() + t >= seq.num_prompt_tokens());
      }
    }
  }

  const int64_t hidden_floats = batch.num_tokens() * config.hidden_size;
  if (a.pp_rank() > 0) {
    shard.hidden.resize(hidden_floats);
    STRATA_RETURN_IF_ERROR(shard.pp_comm->Recv(shard.hidden.data(), hidden_floats,
                                               a.pp_rank() - 1));
  }
  STRATA_RETURN_IF_ERROR(runner.Forward(batch, shard.hidden, shard.out));
  if (!runner.is_last_stage()) {
    return shard.pp_comm->Send(shard.out.data(), hidden_floats, a.pp_rank() + 1);
  }
  if (!shard.is_sampler()) return absl::OkStatus();
  result.set_has_tokens(true);
  const int64_t vocab = config.vocab_size;
  for (size_t r = 0; r < sampling.size(); ++r) {
    const v1::SequenceStep& seq = request.seqs(sampled_seq[r]);
    const SamplingParams& params = sampling[r];
    const absl::Span<const float> raw(shard.out.data() + r * vocab, vocab);
    absl::Span<const float> row = raw;
    if (!params.logit_bias.empty() || params.HasPenalties()) {
      shard.processed.assign(raw.begin(), raw.end());
      ApplyLogitsProcessors(absl::MakeSpan(shard.processed), params,
                            shard.sequences[seq.seq_id()].history);
      row = shard.processed;
    }
    const uint32_t position = static_cast<uint32_t>(seq.num_cached() + seq.tokens_size());
    const int32_t token = SampleToken(row, params, position, shard.scratch);
    result.add_tokens(token);
    if (params.logprobs >= 0) {
      const TokenLogprobs lp = ComputeLogprobs(raw, token, params.logprobs);
      v1::TokenLogprobs* out = result.add_logprobs();
      out->set_index(static_cast<uint32_t>(r));
      out->set_logprob(lp.logprob);
      out->mutable_top_ids()->Add(lp.top_ids.begin(), lp.top_ids.end());
      out->mutable_top_logprobs()->Add(lp.top_logprobs.begin(), lp.top_logprobs.end());
    }
    if (request.return_logits()) result.mutable_logits()->Add(raw.begin(), raw.end());
  }
  return absl::OkStatus();
}

grpc::Status WorkerServiceImpl::Release(grpc::ServerContext*, const v1::ReleaseRequest* request,
                                        v1::ReleaseReply* reply) {
  std::lock_guard<std::mutex> lock(mu_);
  uint32_t released = 0;
  if (shard_ != nullptr) {
    for (uint64_t id : request->seq_ids()) released += shard_->sequences.erase(id);
  }
  reply->set_released(released);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Health(grpc::ServerContext*, const v1::WorkerHealthRequest*,
                                       v1::WorkerHealthReply* reply) {
  reply->set_protocol_version(kClusterProtocolVersion);
  // Do not wait behind a long load or step: report "busy" as what was loaded last.
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (lock.owns_lock() && shard_ != nullptr) {
    reply->set_loaded(true);
    reply->set_generation(shard_->generation);
    reply->set_model(shard_->assignment.model());
  }
  return grpc::Status::OK;
}

}  // namespace

struct WorkerServer::Impl {
  WorkerServerOptions options;
  int port = 0;
  std::unique_ptr<WorkerServiceImpl> service;
  std::unique_ptr<grpc::Server> server;
};

WorkerServer::WorkerServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<WorkerServer>> WorkerServer::Start(
    const WorkerServerOptions& options) {
  if (options.coordinator.empty()) {
    return absl::InvalidArgumentError("worker: the coordinator's address is required");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->service = std::make_unique<WorkerServiceImpl>(options);
  const std::string listen = absl::StrCat(options.bind_host, ":", options.port);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &impl->port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.RegisterService(impl->service.get());
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0) {
    return absl::UnavailableError(absl::StrCat("worker: cannot listen on ", listen));
  }
  STRATA_LOG_INFO("worker service listening on {}:{} (advertised as {}:{})", options.bind_host,
                  impl->port, options.advertise_host, impl->port);
  return std::unique_ptr<WorkerServer>(new WorkerServer(std::move(impl)));
}

WorkerServer::~WorkerServer() { Stop(); }

void WorkerServer::Stop() {
  if (impl_->server == nullptr) return;
  impl_->server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  impl_->server->Wait();
  impl_->server.reset();
  impl_->service->DropShard();
}

int WorkerServer::port() const { return impl_->port; }

std::string WorkerServer::address() const {
  return absl::StrCat(impl_->options.advertise_host, ":", impl_->port);
}

}  // namespace strata

#include "worker/service/worker_server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
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
#include "proto/step_codec.h"
#include "worker/backend/backends.h"
#include "worker/comm/gloo_communicator.h"
#if STRATA_HAVE_NCCL
#include "worker/comm/nccl_communicator.h"
#endif
#include "worker/comm/grpc_store.h"
#include "worker/model/model_runner.h"
#include "worker/runtime/shard_runtime.h"

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

// The loaded shard: its collective groups and its runtime.
struct Shard {
  uint64_t generation = 0;
  v1::ShardAssignment assignment;
  std::unique_ptr<Communicator> tp_comm;  // this stage's TP group (tp_size > 1)
  std::unique_ptr<Communicator> pp_comm;  // this TP index across stages (pp_size > 1)
  // Last, so destroyed first: its backend's recorded graphs hold the TP group's NCCL plans.
  std::unique_ptr<ShardRuntime> runtime;
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
  if (a.max_step_tokens() < 0 || a.max_step_tokens() > (int64_t{1} << 24) ||
      a.max_logit_rows() < 0 || a.max_logit_rows() > (1 << 20)) {
    return absl::InvalidArgumentError(absl::StrCat("shard: max_step_tokens ",
                                                   a.max_step_tokens(), ", max_logit_rows ",
                                                   a.max_logit_rows()));
  }
  return absl::OkStatus();
}

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(const WorkerServerOptions& options)
      : options_(options), store_(options.coordinator, std::chrono::seconds(30), options.tls) {}

  grpc::Status Load(grpc::ServerContext* context, const v1::LoadRequest* request,
                    grpc::ServerWriter<v1::LoadProgress>* writer) override;
  grpc::Status Step(grpc::ServerContext* context,
                    grpc::ServerReaderWriter<v1::StepResult, v1::StepRequest>* stream) override;
  grpc::Status Release(grpc::ServerContext* context, const v1::ReleaseRequest* request,
                       v1::ReleaseReply* reply) override;
  grpc::Status Health(grpc::ServerContext* context, const v1::WorkerHealthRequest* request,
                      v1::WorkerHealthReply* reply) override;

  // A load in progress is abandoned (the coordinator reloads the group anyway); a step in
  // flight is waited for.
  bool Drain(std::chrono::milliseconds timeout) {
    draining_ = true;
    const auto deadline = Clock::now() + timeout;
    while (stepping_) {
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }

  void DropShard() {
    std::lock_guard<std::mutex> lock(mu_);
    shard_.reset();
  }

 private:
  absl::StatusOr<std::unique_ptr<Shard>> LoadShard(const v1::LoadRequest& request,
                                                   grpc::ServerWriter<v1::LoadProgress>& writer);
  static absl::Status RunStep(Shard& shard, const v1::StepRequest& request,
                              v1::StepResult& result);
  // A GPU worker's TP group or pipeline: NCCL on this worker's device (Unimplemented in a
  // build without NCCL). With a `stream` its calls only enqueue there (the TP group, on the
  // backend's stream); without, each waits for its work (the pipeline's hand-offs).
  absl::StatusOr<std::unique_ptr<Communicator>> MakeGpuGroup(int rank, int size,
                                                             std::chrono::milliseconds timeout,
                                                             const std::string& prefix,
                                                             void* stream);

  const WorkerServerOptions options_;
  GrpcStore store_;
  std::mutex mu_;                 // guards shard_; held for a whole load or step
  std::unique_ptr<Shard> shard_;
  std::atomic<uint64_t> stream_epoch_{0};  // the newest Step stream wins
  std::atomic<bool> draining_{false};
  std::atomic<bool> stepping_{false};  // a step runs now
};

absl::StatusOr<std::unique_ptr<Communicator>> WorkerServiceImpl::MakeGpuGroup(
    int rank, int size, std::chrono::milliseconds timeout, const std::string& prefix,
    void* stream) {
#if STRATA_HAVE_NCCL
  NcclOptions nccl;
  nccl.rank = rank;
  nccl.world_size = size;
  nccl.device = std::max(options_.device.index, 0);
  nccl.stream = stream;
  nccl.wait_for_completion = stream == nullptr;
  nccl.timeout = timeout;
  nccl.store_prefix = prefix;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<NcclCommunicator> comm,
                          NcclCommunicator::Create(nccl, store_));
  return std::unique_ptr<Communicator>(std::move(comm));
#else
  (void)rank, (void)size, (void)timeout, (void)prefix, (void)stream;
  return absl::UnimplementedError(
      "this build has no NCCL: GPU workers cannot form a tensor-parallel group or pipeline");
#endif
}

absl::Status ShuttingDown() {
  return absl::UnavailableError("this worker is shutting down (it deregisters and exits)");
}

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
  if (draining_) return ToGrpcStatus(ShuttingDown());
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
  // The rendezvous store admits this worker under the registration the coordinator names.
  store_.SetSession(request.worker_id(), request.session_token());
  GlooOptions gloo;
  gloo.hostname = options_.advertise_host;
  gloo.timeout = std::chrono::milliseconds(
      request.comm_timeout_ms() > 0 ? request.comm_timeout_ms() : 30000);
  BackendOptions backend_options;
  backend_options.device = options_.device;
  backend_options.threads = a.threads() > 0 ? a.threads() : options_.default_threads;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, MakeBackend(backend_options));
  // GPU workers' collectives run on device memory: NCCL for the TP group (queued on the
  // backend's stream, behind the ops that write what they read) and for the pipeline
  // hand-offs, Gloo between CPU workers. Every worker joins its TP group first, then its
  // pipeline: the same order on every rank, so the blocking initialisations cannot cross.
  const bool gpu = options_.device.kind == DeviceKind::kCuda;
  if (a.tp_size() > 1) {
    const std::string prefix =
        absl::StrCat(StoreGenerationPrefix(request.generation()), "tp/stage", a.pp_rank());
    if (gpu) {
      STRATA_ASSIGN_OR_RETURN(shard->tp_comm, MakeGpuGroup(a.tp_rank(), a.tp_size(), gloo.timeout,
                                                           prefix, backend->stream()));
    } else {
      gloo.rank = a.tp_rank();
      gloo.world_size = a.tp_size();
      gloo.store_prefix = prefix;
      STRATA_ASSIGN_OR_RETURN(shard->tp_comm, GlooCommunicator::Create(gloo, store_));
    }
  }
  if (a.pp_size() > 1) {
    const std::string prefix =
        absl::StrCat(StoreGenerationPrefix(request.generation()), "pp/tp", a.tp_rank());
    if (gpu) {
      STRATA_ASSIGN_OR_RETURN(shard->pp_comm, MakeGpuGroup(a.pp_rank(), a.pp_size(), gloo.timeout,
                                                           prefix, nullptr));
    } else {
      gloo.rank = a.pp_rank();
      gloo.world_size = a.pp_size();
      gloo.store_prefix = prefix;
      STRATA_ASSIGN_OR_RETURN(shard->pp_comm, GlooCommunicator::Create(gloo, store_));
    }
  }

  ModelLoadOptions load;
  load.layer_begin = a.layer_begin();
  load.layer_end = a.layer_end();
  if (!a.weight_dtype().empty()) {
    STRATA_ASSIGN_OR_RETURN(load.weight_dtype, ParseWeightDType(a.weight_dtype()));
  }
  load.kv_blocks = a.kv_blocks();
  load.kv_block_size = a.kv_block_size();
  if (a.max_step_tokens() > 0) load.max_step_tokens = a.max_step_tokens();
  if (a.max_logit_rows() > 0) load.max_logit_rows = a.max_logit_rows();
  load.tp_rank = a.tp_rank();
  load.tp_size = a.tp_size();
  load.expert_parallel = a.expert_parallel();
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
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<ModelRunner> runner,
                          LoadModel(a.model(), *backend, load));
  StageRole role;
  role.pp_rank = a.pp_rank();
  role.pp_size = a.pp_size();
  role.tp_rank = a.tp_rank();
  role.pp_comm = shard->pp_comm.get();
  shard->runtime = std::make_unique<ShardRuntime>(std::move(backend), std::move(runner), role);
  const ModelRunner& loaded = shard->runtime->runner();

  v1::LoadProgress ready;
  ready.set_phase("ready");
  ready.set_ready(true);
  ready.set_bytes_done(loaded.weight_bytes());
  ready.set_bytes_total(loaded.weight_bytes());
  ready.set_weight_bytes(loaded.weight_bytes());
  ready.set_kv_blocks(loaded.kv_blocks());
  ready.set_seconds(SecondsSince(start));
  writer.Write(ready);
  STRATA_LOG_INFO("loaded {:.1f} MB of weights in {:.2f} s", loaded.weight_bytes() / 1e6,
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
      stepping_ = true;
      absl::Cleanup done = [this] { stepping_ = false; };
      status = draining_           ? ShuttingDown()
               : shard_ == nullptr ? absl::FailedPreconditionError(
                                         "no shard is loaded (call Load first)")
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
  StepOutput out;
  STRATA_RETURN_IF_ERROR(shard.runtime->Run(DecodeStep(request), out));
  if (shard.runtime->is_sampler() && !request.seqs().empty()) {
    result.set_has_tokens(true);
    EncodeStepOutput(out, result);
  }
  return absl::OkStatus();
}

grpc::Status WorkerServiceImpl::Release(grpc::ServerContext*, const v1::ReleaseRequest* request,
                                        v1::ReleaseReply* reply) {
  std::lock_guard<std::mutex> lock(mu_);
  uint32_t released = 0;
  if (shard_ != nullptr) {
    released = shard_->runtime->Release({request->seq_ids().begin(), request->seq_ids().end()});
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
  // Read the TLS files now: a worker that cannot use them fails at start, not at its first RPC.
  auto server_credentials = ServerCredentialsFor(options.tls);
  if (!server_credentials.ok()) return server_credentials.status();
  if (auto client = ChannelCredentialsFor(options.tls); !client.ok()) return client.status();
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->service = std::make_unique<WorkerServiceImpl>(options);
  const std::string listen = absl::StrCat(options.bind_host, ":", options.port);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, *server_credentials, &impl->port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.RegisterService(impl->service.get());
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0) {
    return absl::UnavailableError(absl::StrCat("worker: cannot listen on ", listen));
  }
  STRATA_LOG_INFO("worker service listening on {}:{} (advertised as {}:{}){}", options.bind_host,
                  impl->port, options.advertise_host, impl->port,
                  options.tls.enabled() ? ", mutual TLS" : "");
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

bool WorkerServer::Drain(std::chrono::milliseconds timeout) {
  return impl_->service->Drain(timeout);
}

int WorkerServer::port() const { return impl_->port; }

std::string WorkerServer::address() const {
  return absl::StrCat(impl_->options.advertise_host, ":", impl_->port);
}

}  // namespace strata

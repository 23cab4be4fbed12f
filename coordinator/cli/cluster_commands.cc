// The distributed runtime's commands:
//   strata worker --coordinator HOST:PORT     one worker process (any host)
//   strata coordinator --model M --tp T --pp P  the coordinator; waits for T x P workers
//   strata serve --model M --tp T --pp P      the coordinator plus T x P local workers
// With --prompt, coordinator and serve generate once through the cluster, print the text and
// exit; without, they stay up (ready) until SIGINT or SIGTERM.
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <optional>
#include <cstdio>
#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "coordinator/cli/commands.h"
#include "coordinator/cluster/cluster_executor.h"
#include "coordinator/cluster/coordinator_server.h"
#include "coordinator/cluster/local_workers.h"
#include "coordinator/chat/template_source.h"
#include "coordinator/engine/batch_generate.h"
#include "coordinator/engine/engine.h"
#include "coordinator/gateway/gateway.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "worker/backend/backends.h"
#include "worker/service/worker_agent.h"
#include "worker/service/worker_server.h"

namespace strata::cli {
namespace {

using std::chrono::milliseconds;

// SIGINT and SIGTERM, blocked in every thread (call before any thread starts) and taken
// synchronously with Wait().
class Signals {
 public:
  Signals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  }
  int Wait() const {
    int sig = 0;
    sigwait(&set_, &sig);
    return sig;
  }

 private:
  sigset_t set_;
};

// Splits "host:port" (port required).
absl::Status SplitHostPort(const std::string& address, std::string& host, int& port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("'", address, "' is not HOST:PORT"));
  }
  host = address.substr(0, colon);
  return absl::OkStatus();
}

// The local address this machine uses to reach `host`:`port` (what peers should dial us at).
absl::StatusOr<std::string> LocalAddressToward(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve coordinator host '", host, "'"));
  }
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in local{};
  socklen_t len = sizeof(local);
  const bool ok = fd >= 0 && connect(fd, found->ai_addr, found->ai_addrlen) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0;
  freeaddrinfo(found);
  if (fd >= 0) close(fd);
  if (!ok) return absl::UnavailableError(absl::StrCat("no route to coordinator host '", host, "'"));
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &local.sin_addr, text, sizeof(text));
  return std::string(text);
}

int64_t PhysicalMemory() {
  return static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
}

int HardwareThreads() { return std::max(1u, std::thread::hardware_concurrency()); }

// Mutual TLS between the coordinator and its workers (proto/tls.h): the same flags on both.
void AddTlsFlags(CLI::App* cmd, TlsFiles& tls) {
  cmd->add_option("--tls-cert", tls.cert, "Mutual TLS with the cluster: this process's PEM "
                  "certificate (with --tls-key and --tls-ca; none: plaintext)")
      ->envname("STRATA_TLS_CERT");
  cmd->add_option("--tls-key", tls.key, "Mutual TLS: the PEM private key of --tls-cert")
      ->envname("STRATA_TLS_KEY");
  cmd->add_option("--tls-ca", tls.ca, "Mutual TLS: the PEM certificate authority every "
                  "member's certificate is signed by")->envname("STRATA_TLS_CA");
  cmd->add_option("--tls-server-name", tls.server_name, "Mutual TLS: the name servers' "
                  "certificates must carry (default: the address dialled)")
      ->envname("STRATA_TLS_SERVER_NAME");
}

// The TLS flags again, for a local worker process.
std::vector<std::string> TlsArgs(const TlsFiles& tls) {
  std::vector<std::string> args;
  for (const auto& [flag, value] : {std::pair{"--tls-cert", tls.cert}, {"--tls-key", tls.key},
                                    {"--tls-ca", tls.ca}, {"--tls-server-name", tls.server_name}}) {
    if (!value.empty()) args.insert(args.end(), {flag, value});
  }
  return args;
}

// ---- strata worker ------------------------------------------------------------------------

struct WorkerFlags {
  std::string coordinator;
  std::string device = "cpu";
  std::string kv_dtype;
  GpuFlags gpu;
  std::string listen = "0.0.0.0:0";
  std::string advertise_host;
  std::string node_name;
  std::string memory;
  int threads = 0;
  int64_t register_timeout_ms = 60000;
  TlsFiles tls;
};

// How long a worker stopped by a signal waits for its step in flight (a Kubernetes pod gets 30 s
// between SIGTERM and SIGKILL by default).
constexpr milliseconds kWorkerDrainTimeout(20'000);

void RunWorker(const WorkerFlags& f) {
  Signals signals;
  // A signal ends the worker at any point, registration included (a worker whose `strata
  // serve` died gets SIGTERM from the kernel, and must not wait out its registration timeout).
  // Once registered, it first lets the step in flight finish and deregisters, so the
  // coordinator counts it gone at once instead of after its lease.
  struct Running {
    std::mutex mu;
    WorkerServer* server = nullptr;
    WorkerAgent* agent = nullptr;
  };
  static Running running;  // outlives the detached signal thread
  std::thread([&signals] {
    const int sig = signals.Wait();
    std::lock_guard<std::mutex> lock(running.mu);
    if (running.server != nullptr && running.agent != nullptr) {
      STRATA_LOG_INFO("signal {}: worker finishing its step in flight, then deregistering", sig);
      if (!running.server->Drain(kWorkerDrainTimeout)) {
        STRATA_LOG_WARN("the step in flight did not finish within {} ms",
                        kWorkerDrainTimeout.count());
      }
      const absl::Status left =
          running.agent->Deregister(absl::StrCat("signal ", sig), milliseconds(2000));
      if (left.ok()) {
        STRATA_LOG_INFO("worker {} deregistered", running.agent->worker_id());
      } else {
        STRATA_LOG_WARN("{}", left.ToString());
      }
    }
    STRATA_LOG_INFO("signal {}: worker exiting", sig);
    std::fflush(nullptr);
    std::_Exit(0);
  }).detach();
  const DeviceSpec device = DeviceSpecOrExit(f.device, f.kv_dtype, f.gpu);
  absl::StatusOr<DeviceInfo> info = ProbeDevice(device);  // fails at once without the device
  ExitIfError(info.status());
  std::string coordinator_host, bind_host;
  int coordinator_port = 0, port = 0;
  ExitIfError(SplitHostPort(f.coordinator, coordinator_host, coordinator_port));
  ExitIfError(SplitHostPort(f.listen, bind_host, port));
  WorkerServerOptions server_options;
  server_options.bind_host = bind_host;
  server_options.port = port;
  server_options.coordinator = f.coordinator;
  server_options.default_threads = f.threads > 0 ? f.threads : HardwareThreads();
  server_options.device = device;
  server_options.tls = f.tls;
  server_options.advertise_host = f.advertise_host;
  if (server_options.advertise_host.empty()) {
    absl::StatusOr<std::string> local = LocalAddressToward(coordinator_host, coordinator_port);
    ExitIfError(local.status());
    server_options.advertise_host = *local;
  }
  absl::StatusOr<std::unique_ptr<WorkerServer>> server = WorkerServer::Start(server_options);
  ExitIfError(server.status());

  WorkerAgentOptions agent_options;
  agent_options.coordinator = f.coordinator;
  agent_options.host = (*server)->address();
  agent_options.inventory.device_kind = info->kind;
  agent_options.inventory.device_count = 1;
  agent_options.inventory.kv_dtype = info->kv_dtype;
  agent_options.inventory.device_name = info->name;
  int64_t memory = info->memory_total > 0 ? info->memory_total : PhysicalMemory();
  if (!f.memory.empty()) {
    absl::StatusOr<int64_t> parsed = ParseByteSize(f.memory);
    ExitIfError(parsed.status());
    memory = *parsed;
  }
  agent_options.inventory.memory_bytes = {memory};
  char hostname[256] = {};
  gethostname(hostname, sizeof(hostname) - 1);
  agent_options.inventory.node_name = f.node_name.empty() ? hostname : f.node_name;
  agent_options.rpc_timeout = milliseconds(f.register_timeout_ms);
  agent_options.tls = f.tls;
  absl::StatusOr<std::unique_ptr<WorkerAgent>> agent = WorkerAgent::Start(agent_options);
  ExitIfError(agent.status());
  STRATA_LOG_INFO("worker {} registered with {} as {} (node {}, {}, {} of memory)",
                  (*agent)->worker_id(), f.coordinator, agent_options.host,
                  agent_options.inventory.node_name, info->name, FormatBytes(memory));
  {
    std::lock_guard<std::mutex> lock(running.mu);
    running.server = server->get();
    running.agent = agent->get();
  }
  for (;;) pause();  // the signal thread ends the process
}

// ---- strata coordinator / strata serve ----------------------------------------------------

struct ClusterFlags {
  std::string model;
  std::string dtype;
  std::string device = "cpu";
  std::string kv_dtype;  // of the local workers' caches (empty: the device's default)
  GpuFlags gpu;          // how the local workers run steps
  std::string listen = "0.0.0.0:50051";
  int tp = 1;
  int pp = 1;
  int replicas = 1;  // data-parallel copies of the model, each a TP x PP worker group
  bool expert_parallel = false;
  int64_t max_kv_blocks = 4096;
  int64_t max_model_len = 0;
  int threads = 0;
  int64_t worker_wait_ms = 60000;
  int64_t step_timeout_ms = 60000;
  int64_t comm_timeout_ms = 30000;
  int64_t lease_ms = 5000;
  int64_t heartbeat_ms = 1000;
  TlsFiles tls;
  // The HTTP API.
  std::string http = "0.0.0.0:8000";
  std::string host;  // --host / --port (vLLM's and Ollama's spelling) override --http's parts
  int port = -1;
  std::string served_model_name;
  std::string api_key_file;
  std::string api_keys;  // comma-separated
  bool protect_ops = false;
  bool vllm_metrics = false;
  bool audit_log = false;
  int64_t key_requests_per_minute = 0;
  int64_t key_tokens_per_minute = 0;
  int64_t max_connections = 4096;
  int64_t max_connections_per_client = 0;
  int64_t max_queue_ms = 60000;
  int64_t drain_timeout_s = 30;
  int worker_restarts = 5;  // serve: restarts of one local worker within two minutes
  int64_t max_body_bytes = int64_t{8} << 20;
  int32_t max_num_seqs = 256;
  int64_t max_num_batched_tokens = 2048;
  bool no_prefix_caching = false;
  // One-shot generation.
  std::string prompt;
  int64_t max_tokens = 32;
  float temperature = 0.0f;
  uint64_t seed = 0;
};

void AddClusterFlags(CLI::App* cmd, ClusterFlags& f, bool serve) {
  cmd->add_option("--model", f.model, "HF model directory or .gguf file (default: the embedded "
                  "random-weight model)")->envname("STRATA_MODEL");
  cmd->add_option("--dtype", f.dtype, "Convert weights on load: f32, f16, bf16, q8_0, q4_0")
      ->envname("STRATA_DTYPE");
  if (serve) {
    cmd->add_option("--device", f.device, "Device of the local workers: cpu, or cuda (one worker "
                    "per GPU)")->envname("STRATA_DEVICE")->capture_default_str();
    cmd->add_option("--kv-dtype", f.kv_dtype, kKvDTypeHelp)->envname("STRATA_KV_DTYPE");
    AddGpuFlags(cmd, &f.gpu);
  }
  cmd->add_option("--listen", f.listen, "Cluster service address (HOST:PORT) workers register at")
      ->envname("STRATA_LISTEN")->capture_default_str();
  cmd->add_option("--tp", f.tp, "Tensor-parallel ranks per pipeline stage")
      ->envname("STRATA_TP")->capture_default_str()->check(CLI::Range(1, 64));
  cmd->add_option("--pp", f.pp, "Pipeline stages")
      ->envname("STRATA_PP")->capture_default_str()->check(CLI::Range(1, 64));
  cmd->add_option("--replicas", f.replicas,
                  serve ? "Data-parallel replicas: TP x PP local workers each; requests are "
                          "routed by load and prefix affinity and move to a healthy replica "
                          "when one fails"
                        : "Data-parallel replicas: TP x PP workers each; replica r's workers "
                          "register at the --listen port + r")
      ->envname("STRATA_REPLICAS")->capture_default_str()->check(CLI::Range(1, 64));
  cmd->add_flag("--expert-parallel", f.expert_parallel,
                "Mixture-of-experts models: spread whole experts over each stage's TP ranks "
                "instead of splitting every expert")->envname("STRATA_EXPERT_PARALLEL");
  cmd->add_option("--max-kv-blocks", f.max_kv_blocks, "Cap on KV blocks per rank (0: no cap)")
      ->envname("STRATA_MAX_KV_BLOCKS")->capture_default_str();
  cmd->add_option("--max-model-len", f.max_model_len,
                  "Tokens the KV cache must hold at least (0: the model's context)")
      ->envname("STRATA_MAX_MODEL_LEN")->capture_default_str();
  cmd->add_option("--threads", f.threads,
                  serve ? "Compute threads per worker (default: cores / workers)"
                        : "Compute threads per worker (default: each worker's own)")
      ->envname("STRATA_THREADS");
  cmd->add_option("--worker-wait-ms", f.worker_wait_ms, "How long to wait for workers to register")
      ->envname("STRATA_WORKER_WAIT_MS")->capture_default_str();
  cmd->add_option("--step-timeout-ms", f.step_timeout_ms,
                  "A step not answered by every rank within this fails the cluster")
      ->envname("STRATA_STEP_TIMEOUT_MS")->capture_default_str();
  cmd->add_option("--comm-timeout-ms", f.comm_timeout_ms, "Bound on the workers' collectives")
      ->envname("STRATA_COMM_TIMEOUT_MS")->capture_default_str();
  cmd->add_option("--lease-ms", f.lease_ms, "A worker silent this long is dead")
      ->envname("STRATA_LEASE_MS")->capture_default_str();
  cmd->add_option("--heartbeat-ms", f.heartbeat_ms, "Worker heartbeat interval")
      ->envname("STRATA_HEARTBEAT_MS")->capture_default_str();
  if (serve) {
    cmd->add_option("--worker-restarts", f.worker_restarts,
                    "Restart a local worker that dies, up to this many times in two minutes "
                    "(more is a crash loop: serve exits with an error; 0: never restart)")
        ->envname("STRATA_WORKER_RESTARTS")->capture_default_str()->check(CLI::Range(0, 1000));
  }
  cmd->add_option("--http", f.http, "Address of the HTTP API (OpenAI-compatible), HOST:PORT")
      ->envname("STRATA_HTTP")->capture_default_str();
  cmd->add_option("--host", f.host, "Address the HTTP API binds (overrides --http's host)")
      ->envname("STRATA_HOST");
  cmd->add_option("--port", f.port, "Port of the HTTP API (overrides --http's port)")
      ->envname("STRATA_PORT")->check(CLI::Range(0, 65535));
  cmd->add_option("--served-model-name", f.served_model_name,
                  "The model id clients send (default: the model file or folder name)")
      ->envname("STRATA_SERVED_MODEL_NAME");
  cmd->add_option("--api-key-file", f.api_key_file, "File of API keys, one per line")
      ->envname("STRATA_API_KEY_FILE");
  cmd->add_option("--api-keys", f.api_keys, "Comma-separated API keys (none: the API is open)")
      ->envname("STRATA_API_KEYS");
  cmd->add_flag("--protect-ops", f.protect_ops, "Require an API key for /health, /ready, /metrics")
      ->envname("STRATA_PROTECT_OPS");
  cmd->add_flag("--audit-log", f.audit_log, "Log one line per API request: key id (a hash of "
                "the key), route, model, status, token counts, seconds; never text")
      ->envname("STRATA_AUDIT_LOG");
  cmd->add_option("--key-requests-per-minute", f.key_requests_per_minute,
                  "Requests per minute per API key (0: no limit); beyond it 429 with Retry-After")
      ->envname("STRATA_KEY_REQUESTS_PER_MINUTE")->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cmd->add_option("--key-tokens-per-minute", f.key_tokens_per_minute,
                  "Prompt + completion tokens per minute per API key (0: no limit); a key over "
                  "it gets 429 with Retry-After until its balance recovers")
      ->envname("STRATA_KEY_TOKENS_PER_MINUTE")->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cmd->add_flag("--vllm-metrics", f.vllm_metrics, "Also export vLLM's metric names")
      ->envname("STRATA_VLLM_METRICS");
  cmd->add_option("--drain-timeout-s", f.drain_timeout_s,
                  "On SIGTERM: /ready turns 503 and new requests get 503 at once; requests in "
                  "progress get this long to finish, then the process exits 0")
      ->envname("STRATA_DRAIN_TIMEOUT_S")->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{3600}));
  cmd->add_option("--max-queue-ms", f.max_queue_ms,
                  "A request not started within this (the cluster is down or saturated) is "
                  "answered 503 with Retry-After (0: wait as long as it takes)")
      ->envname("STRATA_MAX_QUEUE_MS")->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{86400000}));
  cmd->add_option("--max-connections", f.max_connections,
                  "Open HTTP connections at most; more are answered 503 with Retry-After")
      ->envname("STRATA_MAX_CONNECTIONS")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--max-connections-per-client", f.max_connections_per_client,
                  "Open HTTP connections from one address at most (0: no limit); more are "
                  "answered 429 with Retry-After")
      ->envname("STRATA_MAX_CONNECTIONS_PER_CLIENT")->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  cmd->add_option("--max-body-bytes", f.max_body_bytes, "Largest request body accepted (413 above)")
      ->envname("STRATA_MAX_BODY_BYTES")->capture_default_str()
      ->check(CLI::Range(int64_t{1024}, int64_t{1} << 30));
  cmd->add_option("--max-num-seqs", f.max_num_seqs, "Running sequences per step at most")
      ->envname("STRATA_MAX_NUM_SEQS")->capture_default_str()->check(CLI::Range(1, 65536));
  cmd->add_option("--max-num-batched-tokens", f.max_num_batched_tokens, "Tokens per step at most")
      ->envname("STRATA_MAX_NUM_BATCHED_TOKENS")->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_flag("--no-prefix-caching", f.no_prefix_caching, "Do not reuse cached prompt prefixes")
      ->envname("STRATA_NO_PREFIX_CACHING");
  cmd->add_option("--prompt", f.prompt, "Generate once for this prompt, print it and exit")
      ->envname("STRATA_PROMPT");
  AddTlsFlags(cmd, f.tls);
  cmd->add_option("--max-tokens", f.max_tokens, "New tokens for --prompt")
      ->envname("STRATA_MAX_TOKENS")->capture_default_str();
  cmd->add_option("--temperature", f.temperature, "Sampling temperature for --prompt (0: greedy)")
      ->envname("STRATA_TEMPERATURE")->capture_default_str();
  cmd->add_option("--seed", f.seed, "Sampling seed for --prompt")
      ->envname("STRATA_SEED")->capture_default_str();

  // --help by concern.
  const std::pair<const char*, std::vector<const char*>> groups[] = {
      {"Model", {"--model", "--dtype", "--served-model-name", "--max-model-len"}},
      {"Devices and parallelism",
       {"--device", "--kv-dtype", "--eager", "--per-shape-matmul", "--hopper-prefill", "--tp",
        "--pp", "--expert-parallel", "--threads", "--max-kv-blocks"}},
      {"HTTP API",
       {"--http", "--host", "--port", "--api-key-file", "--api-keys", "--protect-ops",
        "--vllm-metrics", "--audit-log", "--key-requests-per-minute", "--key-tokens-per-minute",
        "--max-connections", "--max-connections-per-client", "--max-body-bytes"}},
      {"Scheduling",
       {"--max-num-seqs", "--max-num-batched-tokens", "--no-prefix-caching", "--max-queue-ms"}},
      {"Cluster and reliability",
       {"--listen", "--replicas", "--worker-wait-ms", "--step-timeout-ms", "--comm-timeout-ms", "--lease-ms",
        "--heartbeat-ms", "--worker-restarts", "--drain-timeout-s", "--tls-cert", "--tls-key",
        "--tls-ca", "--tls-server-name"}},
      {"One-shot generation", {"--prompt", "--max-tokens", "--temperature", "--seed"}},
  };
  for (const auto& [group, names] : groups) {
    for (const char* name : names) {
      if (CLI::Option* option = cmd->get_option_no_throw(name)) option->group(group);
    }
  }
}

ExecutorOptions ToExecutorOptions(const ClusterFlags& f, const std::string& model) {
  ExecutorOptions o;
  o.model = model;
  o.weight_dtype = f.dtype;
  o.tp = f.tp;
  o.pp = f.pp;
  o.expert_parallel = f.expert_parallel;
  o.max_kv_blocks = f.max_kv_blocks;
  o.min_kv_tokens = f.max_model_len;
  o.threads_per_worker = f.threads;
  o.worker_wait = milliseconds(f.worker_wait_ms);
  o.step_timeout = milliseconds(f.step_timeout_ms);
  o.comm_timeout = milliseconds(f.comm_timeout_ms);
  o.max_step_tokens = f.max_num_batched_tokens;
  o.max_logit_rows = f.max_num_seqs;
  o.tls = f.tls;
  return o;
}

// Generates f.prompt through the cluster and prints the text and a timing line.
void GenerateOnce(ClusterExecutor& executor, const ClusterFlags& f, const std::string& model) {
  auto tok = tokenizer::LoadTokenizer(model);
  ExitIfError(tok.status());
  absl::StatusOr<std::vector<int32_t>> prompt = (*tok)->Encode(f.prompt, /*add_special=*/true);
  ExitIfError(prompt.status());
  engine::BatchGenerateOptions options;
  options.max_new_tokens = f.max_tokens;
  options.sampling.temperature = f.temperature;
  options.sampling.seed = f.seed;
  options.engine.scheduler.max_batched_tokens = f.max_num_batched_tokens;
  options.engine.scheduler.max_seqs = f.max_num_seqs;
  absl::StatusOr<engine::BatchGenerateResult> result =
      engine::GenerateBatch(executor, {*prompt}, options);
  ExitIfError(result.status());
  absl::StatusOr<std::string> text = (*tok)->Decode(result->sequences[0].tokens, /*skip_special=*/true);
  ExitIfError(text.status());
  std::printf("%s%s\n", f.prompt.c_str(), text->c_str());
  double overhead = 0;
  for (const engine::StepTiming& t : result->steps) overhead += t.wall_seconds - t.compute_seconds;
  std::fprintf(stderr,
               "%zu tokens in %.3f s over TP %d x PP %d; decode %.1f tokens/s; coordinator "
               "overhead %.1f us/step\n",
               result->sequences[0].tokens.size(), result->seconds, f.tp, f.pp,
               result->decode_seconds > 0 ? result->decode_tokens / result->decode_seconds : 0.0,
               1e6 * overhead / std::max<size_t>(1, result->steps.size()));
}

// Replica `replica`'s cluster service: at --listen's port + replica (ephemeral stays ephemeral).
std::unique_ptr<CoordinatorServer> StartCoordinator(const ClusterFlags& f, int replica = 0) {
  CoordinatorServerOptions options;
  std::string host;
  int port = 0;
  ExitIfError(SplitHostPort(f.listen, host, port));
  options.host = host;
  options.port = port == 0 ? 0 : port + replica;
  options.membership.lease = milliseconds(f.lease_ms);
  options.membership.heartbeat_interval = milliseconds(f.heartbeat_ms);
  options.tls = f.tls;
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> server = CoordinatorServer::Start(options);
  ExitIfError(server.status());
  return *std::move(server);
}

// The serving stack over a loaded cluster: tokenizer, chat templates, engine, HTTP gateway.
struct ApiStack {
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  std::optional<chat::ChatTemplates> templates;
  std::unique_ptr<engine::ReplicaRouter> router;  // destroyed after the engines
  std::vector<std::unique_ptr<engine::Engine>> engines;  // one per replica
  std::unique_ptr<gateway::Gateway> gateway;
};

std::string DefaultModelName(const std::string& path) {
  std::filesystem::path p(path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // trailing '/'
  std::string name = p.filename().string();
  if (name.ends_with(".gguf")) name.resize(name.size() - 5);
  return name;
}

std::unique_ptr<ApiStack> StartApi(const std::vector<ClusterExecutor*>& executors,
                                   const ClusterFlags& f, const std::string& model) {
  auto api = std::make_unique<ApiStack>();
  auto tok = tokenizer::LoadTokenizer(model);
  ExitIfError(tok.status());
  api->tokenizer = *std::move(tok);
  if (auto templates = chat::LoadChatTemplates(model); templates.ok() && templates->Get()) {
    api->templates = *std::move(templates);
  } else {
    STRATA_LOG_WARN("{} has no chat template: /v1/chat/completions will refuse requests", model);
  }
  engine::EngineOptions engine_options;
  engine_options.scheduler.max_seqs = f.max_num_seqs;
  engine_options.scheduler.max_batched_tokens = f.max_num_batched_tokens;
  engine_options.prefix_caching = !f.no_prefix_caching;
  engine_options.max_queue_time = milliseconds(f.max_queue_ms);
  engine_options.hand_off_on_failure = executors.size() > 1;
  std::vector<engine::Replica> replicas;
  for (ClusterExecutor* executor : executors) {
    auto engine = engine::Engine::Start(*executor, api->tokenizer.get(), engine_options);
    ExitIfError(engine.status());
    api->engines.push_back(*std::move(engine));
    replicas.push_back({executor, api->engines.back().get()});
  }
  auto router = engine::ReplicaRouter::Create(std::move(replicas));
  ExitIfError(router.status());
  api->router = *std::move(router);

  gateway::GatewayOptions options;
  ExitIfError(SplitHostPort(f.http, options.http.host, options.http.port));
  if (!f.host.empty()) options.http.host = f.host;
  if (f.port >= 0) options.http.port = f.port;
  options.model_name = !f.served_model_name.empty() ? f.served_model_name
                       : f.model.empty()              ? std::string("strata-tiny-random")
                                                      : DefaultModelName(model);
  auto keys = gateway::LoadApiKeys(f.api_key_file, f.api_keys);
  ExitIfError(keys.status());
  options.api_keys = *std::move(keys);
  options.open_health_and_metrics = !f.protect_ops;
  options.vllm_metrics = f.vllm_metrics;
  options.audit_log = f.audit_log;
  options.rate_limits.requests_per_minute = f.key_requests_per_minute;
  options.rate_limits.tokens_per_minute = f.key_tokens_per_minute;
  options.http.max_connections = f.max_connections;
  options.http.max_connections_per_client = f.max_connections_per_client;
  options.http.max_body_bytes = static_cast<size_t>(f.max_body_bytes);
  auto gw = gateway::Gateway::Start(*api->router, *api->tokenizer,
                                    api->templates ? &*api->templates : nullptr, options);
  ExitIfError(gw.status());
  api->gateway = *std::move(gw);
  return api;
}

void RunCoordinator(const ClusterFlags& f) {
  Signals signals;
  const std::string model = ResolveModelPath(f.model);
  std::vector<std::unique_ptr<CoordinatorServer>> servers;
  for (int r = 0; r < f.replicas; ++r) {
    servers.push_back(StartCoordinator(f, r));
    STRATA_LOG_INFO("replica {}: waiting for {} worker(s) at {}", r, f.tp * f.pp,
                    servers.back()->address());
  }
  std::vector<std::unique_ptr<ClusterExecutor>> executors;
  std::vector<ClusterExecutor*> raw;
  for (auto& server : servers) {
    auto executor = ClusterExecutor::Start(server->membership(), ToExecutorOptions(f, model));
    ExitIfError(executor.status());
    executors.push_back(*std::move(executor));
    raw.push_back(executors.back().get());
  }
  if (!f.prompt.empty()) {
    GenerateOnce(*raw[0], f, model);
    return;
  }
  std::unique_ptr<ApiStack> api = StartApi(raw, f, model);
  STRATA_LOG_INFO("serving: {} replica(s) of TP {} x PP {}, HTTP on port {}; stop with SIGINT or "
                  "SIGTERM", f.replicas, f.tp, f.pp, api->gateway->port());
  const int sig = signals.Wait();
  STRATA_LOG_INFO("signal {}: coordinator draining (up to {} s for requests in progress)", sig,
                  f.drain_timeout_s);
  api->gateway->Drain(std::chrono::seconds(f.drain_timeout_s));
  api->gateway->Stop();
}

// The coordinator on 127.0.0.1 and f.tp x f.pp local worker processes sharing this machine's
// cores (f.threads each; 0 = cores / workers) and half its memory.
struct LocalProcesses {
  std::unique_ptr<CoordinatorServer> server;
  std::unique_ptr<LocalWorkers> workers;
};

// Replica `replica` of f.replicas: its coordinator service and its workers.
LocalProcesses StartLocalProcesses(ClusterFlags& f, int replica = 0) {
  if (f.listen == "0.0.0.0:50051") f.listen = "127.0.0.1:0";  // local workers only
  const int world = f.tp * f.pp;
  if (f.threads == 0) f.threads = std::max(1, HardwareThreads() / (world * f.replicas));
  LocalProcesses local;
  local.server = StartCoordinator(f, replica);
  const DeviceSpec device = DeviceSpecOrExit(f.device, f.kv_dtype);
  std::vector<std::string> args = {
      "--log-level", GetLogLevelName(), "worker", "--coordinator", local.server->address(),
      "--listen", "127.0.0.1:0", "--advertise-host", "127.0.0.1", "--node-name", "local",
      "--threads", std::to_string(f.threads)};
  if (device.kind == DeviceKind::kCpu) {  // a GPU worker reports its GPU's memory itself
    const int64_t memory = PhysicalMemory() / 2 / (world * f.replicas);
    args.insert(args.end(), {"--memory", std::to_string(memory)});
  }
  if (!f.kv_dtype.empty()) args.insert(args.end(), {"--kv-dtype", f.kv_dtype});
  for (std::string& arg : GpuFlagArgs(f.gpu)) args.push_back(std::move(arg));
  for (std::string& arg : TlsArgs(f.tls)) args.push_back(std::move(arg));
  // One GPU per worker: replica r's workers take the GPUs after replica r - 1's.
  std::function<std::vector<std::string>(int)> per_worker = [&f](int) {
    return std::vector<std::string>{"--device", f.device};
  };
  if (device.kind == DeviceKind::kCuda) {
    const int first = std::max(device.index, 0) + replica * world;
    per_worker = [first](int i) {
      return std::vector<std::string>{"--device", absl::StrCat("cuda:", first + i)};
    };
  }
  absl::StatusOr<std::unique_ptr<LocalWorkers>> workers =
      LocalWorkers::Spawn(LocalWorkers::SelfPath(), args, world, per_worker);
  ExitIfError(workers.status());
  local.workers = *std::move(workers);
  STRATA_LOG_INFO("replica {}: started {} local worker process(es), {} thread(s) each", replica,
                  world, f.threads);
  return local;
}

// The local workers' device, checked before anything starts: it exists, and on GPUs there is
// one for every worker. Exits with a message otherwise.
void CheckLocalDevices(const ClusterFlags& f) {
  const DeviceSpec device = DeviceSpecOrExit(f.device, f.kv_dtype);
  absl::StatusOr<DeviceInfo> info = ProbeDevice(device);
  ExitIfError(info.status());
  const int world = f.tp * f.pp;
  if (device.kind == DeviceKind::kCuda) {
    const int needed = std::max(device.index, 0) + world * f.replicas;
    if (needed > info->count) {
      ExitIfError(absl::FailedPreconditionError(absl::StrCat(
          "--device ", f.device, " with ", f.replicas, " replica(s) of ", world,
          " worker(s) needs GPUs up to index ", needed - 1, "; this host has ", info->count)));
    }
  }
}

void RunServe(const ClusterFlags& flags) {
  Signals signals;
  ClusterFlags f = flags;
  CheckLocalDevices(f);  // no device, no workers: say so before starting anything
  const std::string model = ResolveModelPath(f.model);
  const int world = f.tp * f.pp;
  std::vector<LocalProcesses> local;
  for (int r = 0; r < f.replicas; ++r) local.push_back(StartLocalProcesses(f, r));

  // A signal at any point (loading included) stops the API (letting requests in progress
  // finish), then the workers, and ends the process. So does a worker's crash loop, with an
  // error.
  std::mutex exit_mu;
  std::atomic<gateway::Gateway*> serving{nullptr};
  auto stop_workers = [&local] {
    for (LocalProcesses& l : local) l.workers->Stop();
  };
  auto shut_down = [&, world](const std::string& why, int code, std::chrono::seconds drain) {
    if (gateway::Gateway* g = serving.load()) {
      STRATA_LOG_INFO("{}: draining (up to {} s for requests in progress)", why, drain.count());
      g->Drain(drain);
      g->Stop();
    }
    std::lock_guard<std::mutex> lock(exit_mu);
    STRATA_LOG_INFO("{}: stopping {} worker(s)", why, world * f.replicas);
    stop_workers();
    std::fflush(nullptr);
    std::_Exit(code);
  };
  std::thread([&signals, &f, shut_down] {
    const int sig = signals.Wait();
    // Asked to stop, and stopped cleanly.
    shut_down(absl::StrCat("signal ", sig), 0, std::chrono::seconds(f.drain_timeout_s));
  }).detach();
  if (f.worker_restarts > 0) {
    RestartPolicy policy;
    policy.max_restarts = f.worker_restarts;
    for (LocalProcesses& l : local) {
      l.workers->Supervise(policy, [shut_down](const absl::Status& loop) {
        // Not on the supervising thread: stopping the workers joins it.
        std::thread([shut_down, loop] {
          STRATA_LOG_ERROR("giving up: {}", std::string(loop.message()));
          shut_down("crash loop", 1, std::chrono::seconds(0));
        }).detach();
      });
    }
  }

  std::vector<std::unique_ptr<ClusterExecutor>> executors;
  std::vector<ClusterExecutor*> raw;
  for (LocalProcesses& l : local) {
    auto executor = ClusterExecutor::Start(l.server->membership(), ToExecutorOptions(f, model));
    if (!executor.ok()) {
      std::lock_guard<std::mutex> lock(exit_mu);
      stop_workers();
      ExitIfError(executor.status());
    }
    executors.push_back(*std::move(executor));
    raw.push_back(executors.back().get());
  }
  if (!f.prompt.empty()) {
    GenerateOnce(*raw[0], f, model);
    std::lock_guard<std::mutex> lock(exit_mu);
    executors.clear();
    stop_workers();
    std::fflush(nullptr);
    std::_Exit(0);  // the signal thread may still hold references
  }
  std::unique_ptr<ApiStack> api = StartApi(raw, f, model);
  serving = api->gateway.get();
  STRATA_LOG_INFO("serving {}: {} replica(s) of TP {} x PP {} on {} local worker(s); HTTP API on "
                  "port {}; stop with SIGINT or SIGTERM",
                  model, f.replicas, f.tp, f.pp, world * f.replicas, api->gateway->port());
  for (;;) pause();  // the signal thread ends the process
}


// ---- strata bench cluster -----------------------------------------------------------------

struct ClusterBenchFlags {
  ClusterFlags cluster;
  int sequences = 0;  // 0 = one per pipeline stage
  int64_t prompt_tokens = 32;
  int64_t decode_tokens = 64;
  int runs = 3;
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

void RunClusterBench(const ClusterBenchFlags& flags) {
  ClusterFlags f = flags.cluster;
  CheckLocalDevices(f);
  const std::string model = ResolveModelPath(f.model);
  LocalProcesses local = StartLocalProcesses(f);
  auto executor = ClusterExecutor::Start(local.server->membership(), ToExecutorOptions(f, model));
  ExitIfError(executor.status());
  const ModelConfig& config = (*executor)->config();
  const int sequences = flags.sequences > 0 ? flags.sequences : f.pp;
  std::vector<std::vector<int32_t>> prompts(sequences);
  for (int s = 0; s < sequences; ++s) {
    for (int64_t i = 0; i < flags.prompt_tokens; ++i) {
      prompts[s].push_back(static_cast<int32_t>(
          300 + (i * 7919 + s * 104729) % std::max<int64_t>(1, config.vocab_size - 300)));
    }
  }
  engine::BatchGenerateOptions options;
  options.max_new_tokens = flags.decode_tokens + 1;
  options.sampling.temperature = 0;
  options.stop_at_eos = false;
  options.engine.scheduler.max_batched_tokens = f.max_num_batched_tokens;
  options.engine.scheduler.max_seqs = f.max_num_seqs;
  engine::BatchGenerateOptions warm = options;
  warm.max_new_tokens = 2;
  ExitIfError(engine::GenerateBatch(**executor, prompts, warm).status());
  std::vector<double> rates, overheads;
  for (int run = 0; run < flags.runs; ++run) {
    auto result = engine::GenerateBatch(**executor, prompts, options);
    ExitIfError(result.status());
    rates.push_back(result->decode_tokens / result->decode_seconds);
    for (const engine::StepTiming& t : result->steps) {
      overheads.push_back(t.wall_seconds - t.compute_seconds);
    }
  }
  // Steps with no sequences: every rank answers at once, so the time is all overhead.
  std::vector<double> empty;
  for (int i = 0; i < 2000; ++i) {
    auto out = (*executor)->Run(StepInput{});
    ExitIfError(out.status());
    empty.push_back(out->wall_seconds);
  }
  std::printf("cluster: %s, TP %d x PP %d, %d thread(s) per worker, %d sequence(s), prompt %lld, "
              "decode %lld\n",
              model.c_str(), f.tp, f.pp, f.threads, sequences,
              static_cast<long long>(flags.prompt_tokens),
              static_cast<long long>(flags.decode_tokens));
  std::printf("decode: %.2f tok/s (median of %d runs; all sequences together)\n",
              Percentile(rates, 0.5), flags.runs);
  std::printf("step time outside the slowest rank's compute: p50 %.1f us, p90 %.1f us "
              "(%zu steps%s)\n",
              1e6 * Percentile(overheads, 0.5), 1e6 * Percentile(overheads, 0.9),
              overheads.size(), f.pp > 1 ? "; includes the other stages' compute" : "");
  std::printf("empty step round trip (coordinator -> every rank -> coordinator): p50 %.1f us, "
              "p90 %.1f us\n",
              1e6 * Percentile(empty, 0.5), 1e6 * Percentile(empty, 0.9));
  executor->reset();
  local.workers->Stop();
}

}  // namespace

void AddClusterBenchCommand(CLI::App& bench) {
  auto flags = std::make_shared<ClusterBenchFlags>();
  CLI::App* cmd = bench.add_subcommand(
      "cluster", "Decode speed and per-step coordinator overhead over TP x PP local workers");
  AddClusterFlags(cmd, flags->cluster, /*serve=*/true);
  cmd->add_option("--sequences", flags->sequences, "Sequences decoded together (default: PP)")
      ->capture_default_str();
  cmd->add_option("--prompt-tokens", flags->prompt_tokens, "Prompt length")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 16))->capture_default_str();
  cmd->add_option("--decode-tokens", flags->decode_tokens, "Tokens to decode per sequence")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 16))->capture_default_str();
  cmd->add_option("--runs", flags->runs, "Measured runs (the median is reported)")
      ->check(CLI::Range(1, 100))->capture_default_str();
  cmd->callback([flags] { RunClusterBench(*flags); });
}

void AddWorkerCommand(CLI::App& app) {
  auto flags = std::make_shared<WorkerFlags>();
  CLI::App* cmd = app.add_subcommand("worker", "Run a worker: register with a coordinator, load "
                                     "the shard it assigns, run its steps");
  cmd->add_option("--coordinator", flags->coordinator, "The coordinator's HOST:PORT")
      ->envname("STRATA_COORDINATOR")->required();
  cmd->add_option("--device", flags->device, "The device this worker runs on: cpu, cuda, cuda:N")
      ->envname("STRATA_DEVICE")->capture_default_str();
  cmd->add_option("--kv-dtype", flags->kv_dtype, kKvDTypeHelp)->envname("STRATA_KV_DTYPE");
  AddGpuFlags(cmd, &flags->gpu);
  cmd->add_option("--listen", flags->listen, "Address of this worker's service (HOST:PORT)")
      ->envname("STRATA_WORKER_LISTEN")->capture_default_str();
  cmd->add_option("--advertise-host", flags->advertise_host,
                  "Address the coordinator and peers reach this worker at (default: the local "
                  "address that routes to the coordinator)")->envname("STRATA_ADVERTISE_HOST");
  cmd->add_option("--node-name", flags->node_name,
                  "Workers with one node name form tensor-parallel groups (default: hostname)")
      ->envname("STRATA_NODE_NAME");
  cmd->add_option("--memory", flags->memory, "Memory this worker may use, e.g. 16GiB (default: "
                  "physical memory)")->envname("STRATA_WORKER_MEMORY");
  cmd->add_option("--threads", flags->threads, "Compute threads (default: all cores)")
      ->envname("STRATA_THREADS");
  cmd->add_option("--register-timeout-ms", flags->register_timeout_ms,
                  "How long to wait for the coordinator at start")
      ->envname("STRATA_REGISTER_TIMEOUT_MS")->capture_default_str();
  AddTlsFlags(cmd, flags->tls);
  cmd->callback([flags] { RunWorker(*flags); });
}

void AddCoordinatorCommand(CLI::App& app) {
  auto flags = std::make_shared<ClusterFlags>();
  CLI::App* cmd = app.add_subcommand(
      "coordinator", "Run the coordinator: wait for TP x PP workers, plan, load, run");
  AddClusterFlags(cmd, *flags, /*serve=*/false);
  cmd->callback([flags] { RunCoordinator(*flags); });
}

void AddServeCommand(CLI::App& app) {
  auto flags = std::make_shared<ClusterFlags>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Run the coordinator and TP x PP local worker processes (one machine)");
  AddClusterFlags(cmd, *flags, /*serve=*/true);
  cmd->callback([flags] { RunServe(*flags); });
}

}  // namespace strata::cli

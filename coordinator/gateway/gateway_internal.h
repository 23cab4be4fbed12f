// Shared by the gateway's .cc files: its state, metrics, JSON and error helpers, and the
// asynchronous bridge from engine events to a handler coroutine.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "boost/asio/awaitable.hpp"
#include "boost/asio/experimental/concurrent_channel.hpp"
#include "boost/json.hpp"
#include "coordinator/chat/chat_prompt.h"
#include "coordinator/gateway/gateway.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace strata::gateway {

// Engine events for one HTTP request, delivered to its coroutine. The engine thread never
// blocks on it: when a slow client lets it fill up, the request is cancelled.
using EventChannel = boost::asio::experimental::concurrent_channel<void(
    boost::system::error_code, engine::SampleOutput)>;
inline constexpr size_t kEventChannelCapacity = 4096;

struct Metrics {
  explicit Metrics(bool vllm_names, const std::string& model);

  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>* requests = nullptr;  // {endpoint, status}
  prometheus::Histogram* ttft = nullptr;
  prometheus::Histogram* itl = nullptr;
  prometheus::Histogram* e2e = nullptr;
  prometheus::Histogram* queue = nullptr;
  prometheus::Counter* prompt_tokens = nullptr;
  prometheus::Counter* generation_tokens = nullptr;
  prometheus::Gauge* running = nullptr;
  prometheus::Gauge* waiting = nullptr;
  prometheus::Gauge* kv_usage = nullptr;
  prometheus::Counter* preemptions = nullptr;
  prometheus::Counter* cluster_failures = nullptr;
  prometheus::Counter* recoveries = nullptr;
  prometheus::Counter* sequence_faults = nullptr;
  prometheus::Counter* handoffs = nullptr;
  prometheus::Counter* steps = nullptr;
  prometheus::Counter* step_seconds = nullptr;
  prometheus::Gauge* ready = nullptr;
  prometheus::Counter* prefix_queries = nullptr;
  prometheus::Counter* prefix_hits = nullptr;
  // The process, under the names of Prometheus's process collector, and malloc's accounting.
  prometheus::Counter* process_cpu = nullptr;
  prometheus::Gauge* process_resident = nullptr;
  prometheus::Gauge* process_virtual = nullptr;
  prometheus::Gauge* process_fds = nullptr;
  prometheus::Gauge* process_max_fds = nullptr;
  prometheus::Gauge* process_start = nullptr;
  prometheus::Gauge* heap_allocated = nullptr;
  prometheus::Gauge* heap_free = nullptr;
  // vLLM-compatible duplicates (null unless enabled).
  prometheus::Gauge* vllm_running = nullptr;
  prometheus::Gauge* vllm_waiting = nullptr;
  prometheus::Gauge* vllm_kv_usage = nullptr;
  prometheus::Histogram* vllm_ttft = nullptr;
  prometheus::Histogram* vllm_itl = nullptr;
  prometheus::Histogram* vllm_e2e = nullptr;
  prometheus::Counter* vllm_prompt_tokens = nullptr;
  prometheus::Counter* vllm_generation_tokens = nullptr;

  prometheus::Family<prometheus::Gauge>* worker_up = nullptr;           // {rank, worker}
  prometheus::Family<prometheus::Counter>* worker_steps = nullptr;      // {rank}
  prometheus::Family<prometheus::Counter>* worker_compute = nullptr;    // {rank}

  // Engine and rank counters last seen, to turn their totals into counter increments.
  int64_t seen_preemptions = 0, seen_prefix_queries = 0, seen_prefix_hits = 0;
  int64_t seen_failures = 0, seen_recoveries = 0, seen_sequence_faults = 0, seen_steps = 0;
  int64_t seen_handoffs = 0;
  double seen_step_seconds = 0;
  std::map<std::string, std::pair<int64_t, double>> seen_ranks;  // rank -> (steps, seconds)
  std::map<std::string, std::pair<std::string, prometheus::Gauge*>> up_series;  // rank -> worker

  void CountRequest(std::string_view endpoint, int status);  // endpoint: a route's label
  void ObserveTtft(double seconds);
  void ObserveItl(double seconds);
  void ObserveE2e(double seconds);
  void AddTokens(int64_t prompt, int64_t generated);
  // Refreshes the gauges and engine counters (under the state's scrape mutex). `ready`: the
  // cluster is loaded and the server is not draining.
  void Refresh(const engine::EngineStats& stats, const std::vector<RankStatus>& ranks,
               bool ready);
};

struct Gateway::State {
  engine::ReplicaRouter* engine = nullptr;  // one replica or several
  const tokenizer::Tokenizer* tokenizer = nullptr;
  const chat::ChatTemplates* templates = nullptr;
  GatewayOptions options;
  std::unique_ptr<Metrics> metrics;
  std::mutex scrape_mu;
  std::unique_ptr<HttpServer> server;
  int64_t created = 0;  // unix seconds, reported as the model's creation time
  std::atomic<uint64_t> next_id{1};
  // Readiness: the last time a generation produced a token.
  std::atomic<int64_t> last_token_ms{0};
  // Draining (Gateway::Drain): refuse new API requests; `in_progress` counts those still running.
  std::atomic<bool> draining{false};
  std::atomic<int64_t> in_progress{0};

  // Bytes of prompt text beyond which no prompt fits the context (0: no such bound), so a huge
  // prompt is refused without being encoded.
  size_t max_prompt_bytes = 0;

  std::unique_ptr<RateLimiter> limiter;
  // Tokens each request in progress consumed, for its audit line (keyed by its exchange).
  std::mutex usage_mu;
  std::map<const HttpExchange*, std::pair<int64_t, int64_t>> usage;

  std::string NewId(std::string_view prefix);
  void NoteToken();
  // Records what `exchange`'s request consumed: metrics, and its audit line when enabled.
  void NoteUsage(const HttpExchange& exchange, int64_t prompt_tokens, int64_t completion_tokens);
  // A prompt's ids (with the model's bos/eos), or OutOfRange when the text is longer than
  // `max_prompt_bytes`.
  absl::StatusOr<std::vector<int32_t>> EncodePrompt(std::string_view text) const;
  // A chat rendered through the model's template and encoded, bounded the same way.
  absl::StatusOr<chat::ChatPrompt> EncodeChatPrompt(const boost::json::array& messages,
                                                    const boost::json::array* tools) const;
};

// A whole JSON response.
boost::asio::awaitable<void> SendJson(HttpExchange& exchange, int status,
                                      const boost::json::value& body,
                                      std::vector<std::pair<std::string, std::string>> headers = {});

// OpenAI's error object, {"error": {"message", "type", "param", "code"}}.
boost::json::object ErrorBody(std::string_view type, std::string_view message,
                              const std::optional<std::string>& param,
                              const std::optional<std::string>& code);

// OpenAI's error object as a response. `type`: invalid_request_error, authentication_error, not_found_error,
// server_error, service_unavailable_error.
boost::asio::awaitable<void> SendError(HttpExchange& exchange, int status, std::string_view type,
                                       std::string_view message,
                                       std::optional<std::string> param = std::nullopt,
                                       std::optional<std::string> code = std::nullopt,
                                       std::vector<std::pair<std::string, std::string>> headers = {});

// Retry-After for a 503 (the service will be back, or the queue shorter, shortly); none else.
std::vector<std::pair<std::string, std::string>> RetryAfterFor(int http_status);

// Who sent a request: the first 12 hex digits of the SHA-256 of its bearer key, "-" without
// one. Audit lines, rate limits and fair share go by it; the key cannot be recovered from it.
std::string KeyId(const HttpRequestHeader& header);

// The HTTP status and OpenAI error type for an engine or cluster error.
int StatusFor(const absl::Status& status);
const char* ErrorTypeFor(int http_status);

boost::asio::awaitable<void> HandleCompletions(Gateway::State& state, HttpExchange& exchange);
boost::asio::awaitable<void> HandleChatCompletions(Gateway::State& state, HttpExchange& exchange);
boost::asio::awaitable<void> HandleOllamaGenerate(Gateway::State& state, HttpExchange& exchange);
boost::asio::awaitable<void> HandleOllamaChat(Gateway::State& state, HttpExchange& exchange);
boost::asio::awaitable<void> HandleOllamaTags(Gateway::State& state, HttpExchange& exchange);
boost::asio::awaitable<void> HandleOllamaShow(Gateway::State& state, HttpExchange& exchange);
boost::asio::awaitable<void> HandleOllamaVersion(Gateway::State& state, HttpExchange& exchange);
boost::asio::awaitable<void> HandleTokenize(Gateway::State& state, HttpExchange& exchange);
boost::asio::awaitable<void> HandleDetokenize(Gateway::State& state, HttpExchange& exchange);

int64_t NowMillis();

}  // namespace strata::gateway

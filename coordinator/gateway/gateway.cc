#include "coordinator/gateway/gateway.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "boost/asio/as_tuple.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "common/logging.h"
#include "common/process_stats.h"
#include "common/strings.h"
#include "coordinator/gateway/gateway_internal.h"
#include "openssl/sha.h"
#include "prometheus/text_serializer.h"

namespace strata::gateway {
namespace {

namespace net = boost::asio;
namespace json = boost::json;

// Token latencies are milliseconds to a minute; request latencies up to ten minutes.
const prometheus::Histogram::BucketBoundaries kTokenBuckets = {
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80};
const prometheus::Histogram::BucketBoundaries kRequestBuckets = {
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 600};
// A generation within this long proves the cluster works; else /ready runs a probe.
constexpr int64_t kReadyFreshMs = 60'000;
constexpr auto kReadyProbeTimeout = std::chrono::seconds(30);

}  // namespace

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Metrics::Metrics(bool vllm_names, const std::string& model) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  auto& r = *registry;
  requests = &BuildCounter().Name("strata_http_requests_total")
                  .Help("HTTP requests by endpoint and status").Register(r);
  ttft = &BuildHistogram().Name("strata_time_to_first_token_seconds")
              .Help("Time from request arrival to its first token").Register(r)
              .Add({}, kTokenBuckets);
  itl = &BuildHistogram().Name("strata_inter_token_latency_seconds")
             .Help("Time between consecutive tokens of a request").Register(r)
             .Add({}, kTokenBuckets);
  e2e = &BuildHistogram().Name("strata_e2e_request_latency_seconds")
             .Help("Time from request arrival to its last token").Register(r)
             .Add({}, kRequestBuckets);
  queue = &BuildHistogram().Name("strata_request_queue_time_seconds")
               .Help("Time from request arrival until it is first scheduled").Register(r)
               .Add({}, kRequestBuckets);
  prompt_tokens = &BuildCounter().Name("strata_prompt_tokens_total")
                       .Help("Prompt tokens of served requests").Register(r).Add({});
  generation_tokens = &BuildCounter().Name("strata_generation_tokens_total")
                           .Help("Generated tokens").Register(r).Add({});
  running = &BuildGauge().Name("strata_num_requests_running")
                 .Help("Sequences running in the engine").Register(r).Add({});
  waiting = &BuildGauge().Name("strata_num_requests_waiting")
                 .Help("Sequences waiting to be scheduled").Register(r).Add({});
  kv_usage = &BuildGauge().Name("strata_kv_cache_usage_ratio")
                  .Help("Share of KV cache blocks in use (0-1)").Register(r).Add({});
  preemptions = &BuildCounter().Name("strata_preemptions_total")
                     .Help("Sequences preempted for lack of KV blocks").Register(r).Add({});
  cluster_failures = &BuildCounter().Name("strata_cluster_failures_total")
                          .Help("Steps the cluster failed (a worker died or stalled)")
                          .Register(r).Add({});
  recoveries = &BuildCounter().Name("strata_cluster_recoveries_total")
                    .Help("Times the cluster was reloaded and running requests resumed")
                    .Register(r).Add({});
  sequence_faults = &BuildCounter().Name("strata_sequence_faults_total")
                         .Help("Requests ended alone by a fault of their own (non-finite "
                               "logits, a step the workers refused)")
                         .Register(r).Add({});
  handoffs = &BuildCounter().Name("strata_replica_handoffs_total")
                  .Help("Requests (per sample) moved to a healthy replica when their "
                        "replica's cluster was lost")
                  .Register(r).Add({});
  steps = &BuildCounter().Name("strata_engine_steps_total")
               .Help("Steps the engine ran (one batch through the model)").Register(r).Add({});
  step_seconds = &BuildCounter().Name("strata_engine_step_seconds_total")
                      .Help("Wall time of the engine's steps, submission to answer")
                      .Register(r).Add({});
  ready = &BuildGauge().Name("strata_ready")
               .Help("1 while the cluster is loaded and the server is not draining")
               .Register(r).Add({});
  prefix_queries = &BuildCounter().Name("strata_prefix_cache_queries_total")
                        .Help("Prompt blocks looked up in the prefix cache").Register(r).Add({});
  prefix_hits = &BuildCounter().Name("strata_prefix_cache_hits_total")
                     .Help("Prompt blocks found in the prefix cache").Register(r).Add({});
  worker_up = &BuildGauge().Name("strata_worker_up")
                   .Help("1 while the rank's worker holds its lease and the cluster is loaded")
                   .Register(r);
  worker_steps = &BuildCounter().Name("strata_worker_steps_total")
                      .Help("Steps each rank answered").Register(r);
  worker_compute = &BuildCounter().Name("strata_worker_step_compute_seconds_total")
                        .Help("Time each rank spent inside its steps").Register(r);
  process_cpu = &BuildCounter().Name("process_cpu_seconds_total")
                     .Help("User and system CPU time of the serving process").Register(r).Add({});
  process_resident = &BuildGauge().Name("process_resident_memory_bytes")
                          .Help("Resident memory of the serving process").Register(r).Add({});
  process_virtual = &BuildGauge().Name("process_virtual_memory_bytes")
                         .Help("Virtual memory of the serving process").Register(r).Add({});
  process_fds = &BuildGauge().Name("process_open_fds")
                     .Help("Open file descriptors of the serving process").Register(r).Add({});
  process_max_fds = &BuildGauge().Name("process_max_fds")
                         .Help("The serving process's limit on open file descriptors")
                         .Register(r).Add({});
  process_start = &BuildGauge().Name("process_start_time_seconds")
                       .Help("Start time of the serving process since the Unix epoch")
                       .Register(r).Add({});
  heap_allocated = &BuildGauge().Name("strata_heap_allocated_bytes")
                        .Help("Bytes the serving process holds from malloc (a leak grows it)")
                        .Register(r).Add({});
  heap_free = &BuildGauge().Name("strata_heap_free_bytes")
                   .Help("Bytes malloc keeps free in its arenas for reuse (resident, but not "
                         "held by the program)")
                   .Register(r).Add({});
  if (vllm_names) {
    const prometheus::Labels labels = {{"model_name", model}};
    vllm_running = &BuildGauge().Name("vllm:num_requests_running")
                        .Help("Number of requests in model execution batches").Register(r)
                        .Add(labels);
    vllm_waiting = &BuildGauge().Name("vllm:num_requests_waiting")
                        .Help("Number of requests waiting to be processed").Register(r)
                        .Add(labels);
    vllm_kv_usage = &BuildGauge().Name("vllm:kv_cache_usage_perc")
                         .Help("KV-cache usage. 1 means 100 percent usage").Register(r)
                         .Add(labels);
    vllm_ttft = &BuildHistogram().Name("vllm:time_to_first_token_seconds")
                     .Help("Histogram of time to first token in seconds").Register(r)
                     .Add(labels, kTokenBuckets);
    vllm_itl = &BuildHistogram().Name("vllm:inter_token_latency_seconds")
                    .Help("Histogram of inter-token latency in seconds").Register(r)
                    .Add(labels, kTokenBuckets);
    vllm_e2e = &BuildHistogram().Name("vllm:e2e_request_latency_seconds")
                    .Help("Histogram of end to end request latency in seconds").Register(r)
                    .Add(labels, kRequestBuckets);
    vllm_prompt_tokens = &BuildCounter().Name("vllm:prompt_tokens_total")
                              .Help("Number of prefill tokens processed").Register(r).Add(labels);
    vllm_generation_tokens = &BuildCounter().Name("vllm:generation_tokens_total")
                                  .Help("Number of generation tokens processed").Register(r)
                                  .Add(labels);
  }
}

void Metrics::CountRequest(std::string_view endpoint, int status) {
  requests->Add({{"endpoint", std::string(endpoint)}, {"status", std::to_string(status)}})
      .Increment();
}

void Metrics::ObserveTtft(double s) {
  ttft->Observe(s);
  if (vllm_ttft) vllm_ttft->Observe(s);
}

void Metrics::ObserveItl(double s) {
  itl->Observe(s);
  if (vllm_itl) vllm_itl->Observe(s);
}

void Metrics::ObserveE2e(double s) {
  e2e->Observe(s);
  if (vllm_e2e) vllm_e2e->Observe(s);
}

void Metrics::AddTokens(int64_t prompt, int64_t generated) {
  prompt_tokens->Increment(static_cast<double>(prompt));
  generation_tokens->Increment(static_cast<double>(generated));
  if (vllm_prompt_tokens) vllm_prompt_tokens->Increment(static_cast<double>(prompt));
  if (vllm_generation_tokens) vllm_generation_tokens->Increment(static_cast<double>(generated));
}

void Metrics::Refresh(const engine::EngineStats& stats, const std::vector<RankStatus>& ranks,
                      bool is_ready) {
  ready->Set(is_ready ? 1 : 0);
  for (const RankStatus& rank : ranks) {
    const std::string label = std::to_string(rank.rank);
    // One series per rank: when a reload gives the rank another worker, the old worker's
    // series goes (a replaced worker must not stay "up").
    auto& [host, up] = up_series[label];
    if (up != nullptr && host != rank.host) {
      worker_up->Remove(up);
      up = nullptr;
    }
    if (up == nullptr) {
      host = rank.host;
      up = &worker_up->Add({{"rank", label}, {"worker", rank.host}});
    }
    up->Set(rank.up ? 1 : 0);
    auto& [steps, seconds] = seen_ranks[label];
    // After a reload a rank starts counting again from zero.
    const bool restarted = rank.steps < steps;
    worker_steps->Add({{"rank", label}})
        .Increment(static_cast<double>(restarted ? rank.steps : rank.steps - steps));
    worker_compute->Add({{"rank", label}})
        .Increment(restarted ? rank.compute_seconds : rank.compute_seconds - seconds);
    steps = rank.steps;
    seconds = rank.compute_seconds;
  }
  const ProcessStats process = ReadProcessStats();
  process_cpu->Increment(std::max(0.0, process.cpu_seconds - process_cpu->Value()));
  process_resident->Set(static_cast<double>(process.resident_bytes));
  process_virtual->Set(static_cast<double>(process.virtual_bytes));
  process_fds->Set(static_cast<double>(process.open_fds));
  process_max_fds->Set(static_cast<double>(process.max_fds));
  process_start->Set(process.start_time_seconds);
  if (process.heap_allocated_bytes >= 0) {
    heap_allocated->Set(static_cast<double>(process.heap_allocated_bytes));
    heap_free->Set(static_cast<double>(process.heap_free_bytes));
  }
  running->Set(static_cast<double>(stats.running));
  waiting->Set(static_cast<double>(stats.waiting));
  const double usage =
      stats.kv_blocks > 0
          ? 1.0 - static_cast<double>(stats.kv_blocks_free) / static_cast<double>(stats.kv_blocks)
          : 0.0;
  kv_usage->Set(usage);
  if (vllm_running) {
    vllm_running->Set(static_cast<double>(stats.running));
    vllm_waiting->Set(static_cast<double>(stats.waiting));
    vllm_kv_usage->Set(usage);
  }
  preemptions->Increment(static_cast<double>(stats.preemptions - seen_preemptions));
  prefix_queries->Increment(static_cast<double>(stats.prefix_query_blocks - seen_prefix_queries));
  prefix_hits->Increment(static_cast<double>(stats.prefix_hit_blocks - seen_prefix_hits));
  cluster_failures->Increment(static_cast<double>(stats.cluster_failures - seen_failures));
  recoveries->Increment(static_cast<double>(stats.recoveries - seen_recoveries));
  seen_preemptions = stats.preemptions;
  seen_failures = stats.cluster_failures;
  seen_recoveries = stats.recoveries;
  sequence_faults->Increment(static_cast<double>(stats.sequence_faults - seen_sequence_faults));
  seen_sequence_faults = stats.sequence_faults;
  handoffs->Increment(static_cast<double>(stats.handed_off - seen_handoffs));
  seen_handoffs = stats.handed_off;
  steps->Increment(static_cast<double>(stats.steps - seen_steps));
  step_seconds->Increment(std::max(0.0, stats.step_seconds - seen_step_seconds));
  seen_steps = stats.steps;
  seen_step_seconds = stats.step_seconds;
  seen_prefix_queries = stats.prefix_query_blocks;
  seen_prefix_hits = stats.prefix_hit_blocks;
}

void Gateway::State::NoteUsage(const HttpExchange& exchange, int64_t prompt_tokens,
                               int64_t completion_tokens) {
  metrics->AddTokens(prompt_tokens, completion_tokens);
  if (limiter->enabled()) {
    limiter->Charge(KeyId(exchange.request()), prompt_tokens + completion_tokens);
  }
  if (!options.audit_log) return;
  std::lock_guard<std::mutex> lock(usage_mu);
  usage[&exchange] = {prompt_tokens, completion_tokens};
}

std::string Gateway::State::NewId(std::string_view prefix) {
  return absl::StrCat(std::string(prefix), "-", absl::Hex(next_id++, absl::kZeroPad16),
                      absl::Hex(created & 0xffff));
}

void Gateway::State::NoteToken() { last_token_ms = NowMillis(); }

absl::StatusOr<std::vector<int32_t>> Gateway::State::EncodePrompt(std::string_view text) const {
  if (max_prompt_bytes > 0 && text.size() > max_prompt_bytes) {
    return absl::OutOfRangeError(absl::StrCat(
        "This model's maximum context length is ", engine->max_model_len(), " tokens; the prompt "
        "is ", text.size(), " bytes, more than that many tokens can hold (", max_prompt_bytes,
        " bytes)"));
  }
  return tokenizer->Encode(text, /*add_special=*/true);
}

absl::StatusOr<chat::ChatPrompt> Gateway::State::EncodeChatPrompt(
    const json::array& messages, const json::array* tools) const {
  return chat::EncodeChat(*templates, *tokenizer, messages, tools, options.model_name,
                          max_prompt_bytes);
}

net::awaitable<void> SendJson(HttpExchange& exchange, int status, const json::value& body,
                              std::vector<std::pair<std::string, std::string>> headers) {
  co_await exchange.Send(status, "application/json", json::serialize(body), std::move(headers));
}

json::object ErrorBody(std::string_view type, std::string_view message,
                       const std::optional<std::string>& param,
                       const std::optional<std::string>& code) {
  json::object error;
  error["message"] = json::string(message);
  error["type"] = json::string(type);
  error["param"] = param ? json::value(json::string(*param)) : json::value(nullptr);
  error["code"] = code ? json::value(json::string(*code)) : json::value(nullptr);
  json::object body;
  body["error"] = std::move(error);
  return body;
}

net::awaitable<void> SendError(HttpExchange& exchange, int status, std::string_view type,
                               std::string_view message, std::optional<std::string> param,
                               std::optional<std::string> code,
                               std::vector<std::pair<std::string, std::string>> headers) {
  const json::object body = ErrorBody(type, message, param, code);
  co_await SendJson(exchange, status, body, std::move(headers));
}

int StatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
      return 503;
    default: return 500;
  }
}

std::vector<std::pair<std::string, std::string>> RetryAfterFor(int http_status) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (http_status == 503) headers.emplace_back("Retry-After", "1");
  return headers;
}

const char* ErrorTypeFor(int http_status) {
  switch (http_status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "invalid_request_error";
    case 429:
    case 503: return "service_unavailable_error";
    default: return "server_error";
  }
}

namespace {

// The path a request targets, without its query.
std::string_view PathOf(const HttpRequestHeader& header) {
  const std::string_view target(header.target().data(), header.target().size());
  return target.substr(0, target.find('?'));
}

// The route a path names, as its metric label: every path no route serves is "other", so no
// client can grow the label set (or put bytes that are not UTF-8 into /metrics).
std::string_view RouteLabel(std::string_view path) {
  static constexpr std::string_view kRoutes[] = {
      "/health", "/ready", "/metrics", "/v1/models", "/v1/completions", "/v1/chat/completions",
      "/api/generate", "/api/chat", "/api/tags", "/api/show", "/api/version", "/tokenize",
      "/detokenize"};
  for (std::string_view route : kRoutes) {
    if (path == route) return route;
  }
  if (path.starts_with("/v1/models/")) return "/v1/models/{id}";
  return "other";
}

// Compares in time that depends only on the lengths, so a key cannot be guessed byte by byte
// from response times.
bool SameKey(std::string_view given, std::string_view key) {
  unsigned char diff = given.size() == key.size() ? 0 : 1;
  for (size_t i = 0; i < given.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i] ^ key[i % std::max<size_t>(1, key.size())]);
  }
  return diff == 0;
}

}  // namespace

std::string KeyId(const HttpRequestHeader& header) {
  const auto field = header[boost::beast::http::field::authorization];
  absl::string_view value(field.data(), field.size());
  if (!absl::ConsumePrefix(&value, "Bearer ")) return "-";
  value = absl::StripAsciiWhitespace(value);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(value.data()), value.size(), digest);
  return absl::BytesToHexString(
             absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)))
      .substr(0, 12);
}

namespace {

// One audit line (--audit-log): who (a key id), what, the outcome and the cost; never text.
void Audit(const Gateway::State& s, const HttpRequestHeader& header, std::string_view route,
           int status, int64_t prompt_tokens, int64_t completion_tokens, double seconds) {
  STRATA_LOG_INFO(
      "audit key={} route={} model={} status={} prompt_tokens={} completion_tokens={} "
      "seconds={:.3f}",
      KeyId(header), route, s.options.model_name, status, prompt_tokens, completion_tokens,
      seconds);
}

bool Authorized(const Gateway::State& s, const HttpRequestHeader& header) {
  if (s.options.api_keys.empty()) return true;
  const auto field = header[boost::beast::http::field::authorization];
  absl::string_view value(field.data(), field.size());
  if (!absl::ConsumePrefix(&value, "Bearer ")) return false;
  value = absl::StripAsciiWhitespace(value);
  bool match = false;
  for (const std::string& key : s.options.api_keys) {
    match |= SameKey(std::string_view(value.data(), value.size()), key);
  }
  return match;
}

// Runs on each request's header, before its body is read: a request without a valid key is
// answered 401 at once.
std::optional<HttpRefusal> Admit(Gateway::State& s, const HttpRequestHeader& header) {
  const std::string_view path = PathOf(header);
  const bool ops = path == "/health" || path == "/ready" || path == "/metrics";
  if (s.draining && !ops) {
    s.metrics->CountRequest(RouteLabel(path), 503);
    HttpRefusal refusal;
    refusal.status = 503;
    refusal.headers = RetryAfterFor(503);
    refusal.body = json::serialize(ErrorBody(
        "service_unavailable_error",
        "the server is shutting down; retry (another replica will answer)", std::nullopt,
        std::nullopt));
    return refusal;
  }
  if (ops && s.options.open_health_and_metrics) return std::nullopt;
  if (Authorized(s, header)) {
    if (ops || !s.limiter->enabled()) return std::nullopt;
    const auto refused = s.limiter->Admit(KeyId(header));
    if (!refused) return std::nullopt;
    s.metrics->CountRequest(RouteLabel(path), 429);
    const int64_t seconds = std::max<int64_t>(1, (refused->retry_after.count() + 999) / 1000);
    if (s.options.audit_log) Audit(s, header, RouteLabel(path), 429, 0, 0, 0);
    const RateLimits& limits = s.limiter->limits();
    HttpRefusal refusal;
    refusal.status = 429;
    refusal.headers = {{"Retry-After", std::to_string(seconds)}};
    refusal.body = json::serialize(ErrorBody(
        refused->tokens ? "tokens" : "requests",
        refused->tokens
            ? absl::StrCat("Rate limit reached for tokens per minute (limit ",
                           limits.tokens_per_minute, " for this API key); try again in ",
                           seconds, " s")
            : absl::StrCat("Rate limit reached for requests per minute (limit ",
                           limits.requests_per_minute, " for this API key); try again in ",
                           seconds, " s"),
        std::nullopt, "rate_limit_exceeded"));
    return refusal;
  }
  s.metrics->CountRequest(RouteLabel(path), 401);
  if (s.options.audit_log) Audit(s, header, RouteLabel(path), 401, 0, 0, 0);
  HttpRefusal refusal;
  refusal.status = 401;
  refusal.body = json::serialize(
      ErrorBody("authentication_error",
                "Incorrect API key provided: pass one as 'Authorization: Bearer KEY'",
                std::nullopt, "invalid_api_key"));
  return refusal;
}

json::object ModelObject(const Gateway::State& s) {
  return json::object{{"id", s.options.model_name},
                      {"object", "model"},
                      {"created", s.created},
                      {"owned_by", "strata"},
                      {"max_model_len", s.engine->max_model_len()}};
}

// /ready: the cluster is loaded and a generation has succeeded within a minute (else a probe
// generates one token now).
net::awaitable<bool> Ready(Gateway::State& s, HttpExchange& exchange) {
  if (!s.engine->health().ok()) co_return false;
  if (NowMillis() - s.last_token_ms.load() < kReadyFreshMs) co_return true;
  auto channel = std::make_shared<EventChannel>(exchange.executor(), 16);
  engine::GenerationRequest probe;
  probe.prompt = {s.engine->config().bos_token_id >= 0 ? s.engine->config().bos_token_id : 1};
  probe.max_tokens = 1;
  probe.sampling.temperature = 0;
  probe.ignore_eos = true;
  probe.priority = 1000;
  auto id = s.engine->Add(probe, [channel](const engine::SampleOutput& e) {
    return channel->try_send(boost::system::error_code(), e);
  });
  if (!id.ok()) co_return false;
  net::steady_timer timer(exchange.executor(), kReadyProbeTimeout);
  timer.async_wait([channel](boost::system::error_code ec) {
    if (!ec) channel->close();
  });
  for (;;) {
    auto [ec, event] = co_await channel->async_receive(net::as_tuple(net::use_awaitable));
    if (ec) {
      s.engine->Cancel(*id);
      co_return false;
    }
    if (event.finish != engine::FinishReason::kNone) {
      timer.cancel();
      const bool ok = !event.token_ids.empty() && event.finish == engine::FinishReason::kLength;
      if (ok) s.NoteToken();
      co_return ok;
    }
  }
}

net::awaitable<void> Route(std::shared_ptr<Gateway::State> state, HttpExchange& exchange) {
  Gateway::State& s = *state;
  const std::string path(exchange.path());
  const auto method = exchange.request().method();
  const bool get = method == boost::beast::http::verb::get;
  const bool post = method == boost::beast::http::verb::post;
  exchange.OnRespond([&s, label = RouteLabel(path)](int status) {
    s.metrics->CountRequest(label, status);
  });
  const bool ops = path == "/health" || path == "/ready" || path == "/metrics";
  if (!ops) ++s.in_progress;
  const auto start = std::chrono::steady_clock::now();
  absl::Cleanup done = [&s, &exchange, ops, start, path] {
    if (ops) return;
    --s.in_progress;
    if (!s.options.audit_log) return;
    std::pair<int64_t, int64_t> tokens{0, 0};
    {
      std::lock_guard<std::mutex> lock(s.usage_mu);
      if (auto it = s.usage.find(&exchange); it != s.usage.end()) {
        tokens = it->second;
        s.usage.erase(it);
      }
    }
    Audit(s, exchange.request(), RouteLabel(path), exchange.status(), tokens.first, tokens.second,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  };
  if (get && path == "/ready" && s.draining) {
    json::object body;
    body["status"] = "draining";
    body["detail"] = "the server is shutting down";
    co_await SendJson(exchange, 503, body);
  } else if (get && path == "/health") {
    json::object body;
    body["status"] = "ok";
    co_await SendJson(exchange, 200, body);
  } else if (get && path == "/ready") {
    const bool ready = co_await Ready(s, exchange);
    json::object body;
    body["status"] = ready ? "ready" : "not ready";
    body["detail"] = ready ? std::string() : std::string(s.engine->health().message());
    co_await SendJson(exchange, ready ? 200 : 503, body);
  } else if (get && path == "/metrics") {
    std::string text;
    {
      std::lock_guard<std::mutex> lock(s.scrape_mu);
      s.metrics->Refresh(s.engine->stats(), s.engine->ranks(),
                         s.engine->health().ok() && !s.draining);
      text = prometheus::TextSerializer().Serialize(s.metrics->registry->Collect());
    }
    co_await exchange.Send(200, "text/plain; version=0.0.4; charset=utf-8", std::move(text));
  } else if (get && path == "/v1/models") {
    json::object body;
    body["object"] = "list";
    body["data"] = json::array{ModelObject(s)};
    co_await SendJson(exchange, 200, body);
  } else if (get && path.starts_with("/v1/models/")) {
    const std::string id = path.substr(std::string("/v1/models/").size());
    if (id == s.options.model_name) {
      json::object model = ModelObject(s);
      co_await SendJson(exchange, 200, model);
    } else {
      std::string message = absl::StrCat("The model '", absl::CHexEscape(id), "' does not exist");
      std::optional<std::string> param = "model", code = "model_not_found";
      co_await SendError(exchange, 404, "invalid_request_error", message, std::move(param),
                         std::move(code));
    }
  } else if (post && path == "/v1/completions") {
    co_await HandleCompletions(s, exchange);
  } else if (post && path == "/v1/chat/completions") {
    co_await HandleChatCompletions(s, exchange);
  } else if (post && path == "/api/generate") {
    co_await HandleOllamaGenerate(s, exchange);
  } else if (post && path == "/api/chat") {
    co_await HandleOllamaChat(s, exchange);
  } else if (get && path == "/api/tags") {
    co_await HandleOllamaTags(s, exchange);
  } else if (post && path == "/api/show") {
    co_await HandleOllamaShow(s, exchange);
  } else if (get && path == "/api/version") {
    co_await HandleOllamaVersion(s, exchange);
  } else if (post && path == "/tokenize") {
    co_await HandleTokenize(s, exchange);
  } else if (post && path == "/detokenize") {
    co_await HandleDetokenize(s, exchange);
  } else {
    std::string message = absl::StrCat("no route for ",
                                       std::string(exchange.request().method_string()), " ",
                                       absl::CHexEscape(path));
    co_await SendError(exchange, 404, "not_found_error", message);
  }
}

}  // namespace

Gateway::Gateway(std::shared_ptr<State> state) : state_(std::move(state)) {}

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Start(engine::ReplicaRouter& engine,
                                                        const tokenizer::Tokenizer& tokenizer,
                                                        const chat::ChatTemplates* templates,
                                                        GatewayOptions options) {
  auto state = std::make_shared<State>();
  state->engine = &engine;
  state->tokenizer = &tokenizer;
  state->templates = templates;
  state->options = std::move(options);
  state->metrics = std::make_unique<Metrics>(state->options.vllm_metrics, state->options.model_name);
  state->limiter = std::make_unique<RateLimiter>(state->options.rate_limits);
  state->created = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  state->max_prompt_bytes =
      tokenizer.max_bytes_per_token() * static_cast<size_t>(engine.max_model_len());
  if (state->options.api_keys.empty()) {
    STRATA_LOG_WARN("http: no API keys configured: the API is open to anyone who can reach it");
  }
  state->options.http.admit = [raw = state.get()](const HttpRequestHeader& header) {
    return Admit(*raw, header);  // the server stops before the state goes
  };
  auto server = HttpServer::Start(state->options.http, [state](HttpExchange& exchange) {
    return Route(state, exchange);
  });
  if (!server.ok()) return server.status();
  state->server = *std::move(server);
  STRATA_LOG_INFO("http: serving model '{}' (OpenAI API at /v1)", state->options.model_name);
  return std::unique_ptr<Gateway>(new Gateway(std::move(state)));
}

Gateway::~Gateway() { Stop(); }

void Gateway::Drain(std::chrono::milliseconds timeout) {
  state_->draining = true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (state_->in_progress > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (state_->in_progress > 0) {
    STRATA_LOG_WARN("http: drain timeout: {} request(s) still in progress are cut off",
                    state_->in_progress.load());
  }
}

void Gateway::Stop() {
  if (state_->server) state_->server->Stop();
}

int Gateway::port() const { return state_->server->port(); }

absl::StatusOr<std::vector<std::string>> LoadApiKeys(const std::string& file,
                                                     const std::string& env) {
  std::vector<std::string> keys;
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return absl::NotFoundError(absl::StrCat(file, ": cannot read the API key file"));
    std::string line;
    while (std::getline(in, line)) {
      const absl::string_view key = absl::StripAsciiWhitespace(line);
      if (key.empty() || key.front() == '#') continue;
      keys.emplace_back(key.data(), key.size());
    }
  }
  for (absl::string_view key : absl::StrSplit(env, ',', absl::SkipWhitespace())) {
    const absl::string_view stripped = absl::StripAsciiWhitespace(key);
    keys.emplace_back(stripped.data(), stripped.size());
  }
  return keys;
}

}  // namespace strata::gateway

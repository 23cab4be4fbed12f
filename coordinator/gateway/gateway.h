// Gateway: Strata's HTTP API in front of the engine.
//
//   OpenAI:  POST /v1/completions, POST /v1/chat/completions (streaming as Server-Sent Events
//            ending with `data: [DONE]`), GET /v1/models, GET /v1/models/{id}
//   Ops:     GET /health (process up), GET /ready (every rank loaded and a one-token
//            generation succeeded within the last minute), GET /metrics (Prometheus)
//
// Errors are OpenAI's {"error": {"message", "type", "param", "code"}} with the status the
// OpenAI API uses: 400 for a bad request (naming the parameter; both lengths when a prompt is
// too long for the context), 401 for a missing or wrong API key, 404 for an unknown model or
// path, 413 for a body over the limit, 503 with Retry-After when the engine's queue is full or
// the cluster is down, 500 only for our own faults.
//
// API keys: `Authorization: Bearer KEY`, any of `api_keys`; none configured means open (with a
// warning at start). Whether /health and /metrics need a key is configurable.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/gateway/rate_limiter.h"
#include "absl/status/statusor.h"
#include "coordinator/chat/template_source.h"
#include "coordinator/engine/engine.h"
#include "coordinator/engine/replica_router.h"
#include "coordinator/gateway/http_server.h"

namespace strata::gateway {

struct GatewayOptions {
  HttpServerOptions http;
  std::string model_name;                // the id clients send as "model"
  std::vector<std::string> api_keys;     // empty: no authentication
  bool open_health_and_metrics = true;   // /health, /ready and /metrics without a key
  int64_t max_waiting = 1024;            // queued sequences beyond which requests get 503
  bool vllm_metrics = false;             // also export vLLM's metric names
  // One log line per API request: key id (a hash, never the key), route, model, status,
  // prompt and completion tokens, seconds; never prompt or completion text.
  bool audit_log = false;
  // Per API key (all clients together when there are no keys): beyond these, 429 with
  // Retry-After. Tokens are charged as used (prompt + completion).
  RateLimits rate_limits;
};

class Gateway {
 public:
  // `engine` (the model's replicas: one engine or several), `tokenizer` and `templates` (may
  // be null: no chat) must outlive the gateway.
  static absl::StatusOr<std::unique_ptr<Gateway>> Start(engine::ReplicaRouter& engine,
                                                        const tokenizer::Tokenizer& tokenizer,
                                                        const chat::ChatTemplates* templates,
                                                        GatewayOptions options);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Graceful shutdown, first half: from now /ready answers 503 and every new API request 503
  // with Retry-After (so a load balancer moves traffic elsewhere; /health and /metrics keep
  // answering). Returns once no API request is in progress, or after `timeout`.
  void Drain(std::chrono::milliseconds timeout);
  // Stops serving (requests still in progress get the server's shutdown grace).
  void Stop();
  int port() const;

  struct State;  // shared with the API handlers (gateway_internal.h)

 private:
  explicit Gateway(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

// Reads API keys: from `file` (one per line, '#' comments) and the comma-separated `env`.
absl::StatusOr<std::vector<std::string>> LoadApiKeys(const std::string& file,
                                                     const std::string& env);

}  // namespace strata::gateway

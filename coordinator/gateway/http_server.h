// HttpServer: an asynchronous HTTP/1.1 server on Boost.Beast with C++20 coroutines. Each
// connection is one coroutine (keep-alive: requests in sequence), so thousands of slow
// streaming responses cost no thread each; a few threads run the io_context.
//
// Limits, each answered with a status rather than a dropped connection where HTTP allows:
// a request that is not HTTP (400), headers larger than 16 KiB (431), bodies larger than
// `max_body_bytes` (413), more than `max_connections` open at once (503 with Retry-After),
// more than `max_connections_per_client` from one address (429 with Retry-After),
// headers not received within `header_timeout` or a body not within `body_timeout` (the
// connection is closed), a write that makes no progress within `write_timeout` (closed).
// Stop() stops accepting, lets requests in progress finish for up to `shutdown_grace`, then
// closes the rest.
//
// `admit` sees each request's header before its body is read: a refusal (a missing API key)
// is answered at once, so an unauthenticated client cannot make the server read 8 MiB. A
// client that sends `Expect: 100-continue` gets `100 Continue` once admitted.
//
// Handlers are coroutines: `co_await exchange.Send(...)` for a whole response, or StartStream /
// WriteChunk / EndStream for a streamed one (Server-Sent Events, NDJSON): chunked for HTTP/1.1,
// ended by closing the connection for HTTP/1.0. A handler runs on the connection's strand; it
// must not block the thread (waiting on the engine goes through asynchronous channels).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/asio/awaitable.hpp"
#include "boost/asio/any_io_executor.hpp"
#include "boost/beast/http/fields.hpp"
#include "boost/beast/http/message.hpp"
#include "boost/beast/http/string_body.hpp"

namespace strata::gateway {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpRequestHeader = boost::beast::http::request_header<>;

// A whole response, given without running the handler (see HttpServerOptions::admit).
struct HttpRefusal {
  int status = 400;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// One request and its response, as a handler sees them.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  virtual const HttpRequest& request() const = 0;
  virtual std::string_view path() const = 0;          // target without the query
  virtual std::string_view query() const = 0;         // after '?', or empty
  virtual boost::asio::any_io_executor executor() = 0;

  // A whole response. Extra headers are (name, value) pairs.
  virtual boost::asio::awaitable<void> Send(
      int status, std::string_view content_type, std::string body,
      std::vector<std::pair<std::string, std::string>> headers = {}) = 0;
  // A chunked response: the header now, then chunks. Each returns false once the client is
  // gone (the handler should stop its work).
  virtual boost::asio::awaitable<bool> StartStream(int status, std::string_view content_type) = 0;
  virtual boost::asio::awaitable<bool> WriteChunk(std::string data) = 0;
  virtual boost::asio::awaitable<bool> EndStream() = 0;
  virtual bool responded() const = 0;
  virtual int status() const = 0;  // of the response sent (0 before one)
  // Called with the status as a response starts, before a byte of it is written (so a client
  // that has the answer finds it counted).
  virtual void OnRespond(std::function<void(int status)> callback) = 0;

  // Calls `on_gone` (on the handler's strand) if the client closes its connection before the
  // response starts: a handler that waits for a whole result uses it to stop the work. A client
  // that instead sends its next (pipelined) request is not gone; the watch ends there.
  virtual void WatchForDisconnect(std::function<void()> on_gone) = 0;
};

using Handler = std::function<boost::asio::awaitable<void>(HttpExchange&)>;

struct HttpServerOptions {
  std::string host = "0.0.0.0";
  int port = 8000;  // 0: ephemeral
  int threads = 2;
  size_t max_body_bytes = size_t{8} << 20;
  std::chrono::milliseconds header_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds body_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds write_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds shutdown_grace{std::chrono::seconds(10)};
  int64_t max_connections = 4096;
  int64_t max_connections_per_client = 0;  // open at once from one remote address; 0: no limit
  // Sees each request's header before the body is read; a refusal is sent and the connection
  // closed. Unset: every request is admitted.
  std::function<std::optional<HttpRefusal>(const HttpRequestHeader&)> admit;
};

class HttpServer {
 public:
  // Binds and starts serving every request with `handler` (which routes). Unavailable when the
  // address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  void Stop();  // idempotent
  int port() const;
  int64_t open_connections() const;

 private:
  struct Impl;
  explicit HttpServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace strata::gateway

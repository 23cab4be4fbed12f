// HttpServer: an asynchronous HTTP/1.1 server on Boost.Beast with C++20 coroutines. Each
// connection is one coroutine (keep-alive: requests in sequence), so thousands of slow
// streaming responses cost no thread each; a few threads run the io_context.
//
// Limits, each answered with a status rather than a dropped connection where HTTP allows:
// headers larger than 16 KiB (431), bodies larger than `max_body_bytes` (413), headers not
// received within `header_timeout` or a body not within `body_timeout` (the connection is
// closed), a write that makes no progress within `write_timeout` (closed). Stop() stops
// accepting, lets requests in progress finish for up to `shutdown_grace`, then closes the rest.
//
// Handlers are coroutines: `co_await exchange.Send(...)` for a whole response, or StartStream /
// WriteChunk / EndStream for a chunked one (Server-Sent Events, NDJSON). A handler runs on the
// connection's strand; it must not block the thread (waiting on the engine goes through
// asynchronous channels).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/asio/awaitable.hpp"
#include "boost/asio/any_io_executor.hpp"
#include "boost/beast/http/message.hpp"
#include "boost/beast/http/string_body.hpp"

namespace strata::gateway {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

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

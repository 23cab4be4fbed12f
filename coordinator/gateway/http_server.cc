#include "coordinator/gateway/http_server.h"

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "boost/asio/as_tuple.hpp"
#include "boost/asio/co_spawn.hpp"
#include "boost/asio/detached.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/core/tcp_stream.hpp"
#include "boost/beast/http/chunk_encode.hpp"
#include "boost/beast/http/empty_body.hpp"
#include "boost/beast/http/parser.hpp"
#include "boost/beast/http/read.hpp"
#include "boost/beast/http/serializer.hpp"
#include "boost/beast/http/write.hpp"
#include "common/logging.h"

namespace strata::gateway {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
constexpr auto kTuple = net::as_tuple(net::use_awaitable);
constexpr uint32_t kMaxHeaderBytes = 16 << 10;
// How long a refused request's remaining upload is drained before the connection closes.
constexpr std::chrono::seconds kLingerTime(5);

class Exchange : public HttpExchange {
 public:
  Exchange(beast::tcp_stream& stream, HttpRequest& request, std::chrono::milliseconds write_timeout)
      : stream_(stream), request_(request), write_timeout_(write_timeout) {
    const std::string_view target(request_.target().data(), request_.target().size());
    const size_t q = target.find('?');
    path_ = target.substr(0, q);
    if (q != std::string_view::npos) query_ = target.substr(q + 1);
  }

  const HttpRequest& request() const override { return request_; }
  std::string_view path() const override { return path_; }
  std::string_view query() const override { return query_; }
  net::any_io_executor executor() override { return stream_.get_executor(); }
  bool responded() const override { return responded_; }
  bool keep_alive() const { return keep_alive_; }

  net::awaitable<void> Send(int status, std::string_view content_type, std::string body,
                            std::vector<std::pair<std::string, std::string>> headers) override {
    responded_ = true;
    http::response<http::string_body> res{static_cast<http::status>(status), request_.version()};
    res.set(http::field::server, "strata");
    res.set(http::field::content_type, content_type);
    for (auto& [name, value] : headers) res.set(name, value);
    res.keep_alive(request_.keep_alive() && keep_alive_);
    keep_alive_ = res.keep_alive();
    res.body() = std::move(body);
    res.prepare_payload();
    stream_.expires_after(write_timeout_);
    auto [ec, n] = co_await http::async_write(stream_, res, kTuple);
    if (ec) keep_alive_ = false;
  }

  net::awaitable<bool> StartStream(int status, std::string_view content_type) override {
    responded_ = true;
    http::response<http::empty_body> res{static_cast<http::status>(status), request_.version()};
    res.set(http::field::server, "strata");
    res.set(http::field::content_type, content_type);
    res.set(http::field::cache_control, "no-cache");
    res.keep_alive(request_.keep_alive());
    keep_alive_ = res.keep_alive();
    res.chunked(true);
    http::response_serializer<http::empty_body> serializer{res};
    stream_.expires_after(write_timeout_);
    auto [ec, n] = co_await http::async_write_header(stream_, serializer, kTuple);
    co_return Ok(ec);
  }

  net::awaitable<bool> WriteChunk(std::string data) override {
    if (broken_) co_return false;
    if (data.empty()) co_return true;
    stream_.expires_after(write_timeout_);
    auto [ec, n] = co_await net::async_write(stream_, http::make_chunk(net::buffer(data)), kTuple);
    co_return Ok(ec);
  }

  net::awaitable<bool> EndStream() override {
    if (broken_) co_return false;
    stream_.expires_after(write_timeout_);
    auto [ec, n] = co_await net::async_write(stream_, http::make_chunk_last(), kTuple);
    co_return Ok(ec);
  }

 private:
  bool Ok(const boost::system::error_code& ec) {
    if (ec) {
      broken_ = true;
      keep_alive_ = false;
    }
    return !ec;
  }

  beast::tcp_stream& stream_;
  HttpRequest& request_;
  const std::chrono::milliseconds write_timeout_;
  std::string_view path_, query_;
  bool responded_ = false;
  bool keep_alive_ = true;
  bool broken_ = false;
};

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  HttpServerOptions options;
  Handler handler;
  net::io_context io;
  tcp::acceptor acceptor{io};
  int port = 0;
  std::vector<std::thread> threads;
  std::atomic<int64_t> connections{0};
  std::atomic<bool> stopping{false};
  bool stopped = false;
  // Connections waiting for their next request: Stop() closes these at once.
  std::mutex idle_mu;
  std::set<std::shared_ptr<beast::tcp_stream>> idle;

  void SetIdle(const std::shared_ptr<beast::tcp_stream>& stream, bool is_idle) {
    std::lock_guard<std::mutex> lock(idle_mu);
    if (is_idle) {
      idle.insert(stream);
    } else {
      idle.erase(stream);
    }
  }

  net::awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(net::make_strand(io), kTuple);
      if (ec) {
        if (stopping) co_return;
        continue;  // EMFILE and friends: keep serving the connections we have
      }
      auto executor = socket.get_executor();
      net::co_spawn(executor,
                    Session(std::make_shared<beast::tcp_stream>(std::move(socket))),
                    net::detached);
    }
  }

  net::awaitable<void> SendError(beast::tcp_stream& stream, unsigned version, http::status status,
                                 std::string message) {
    http::response<http::string_body> res{status, version};
    res.set(http::field::content_type, "application/json");
    res.keep_alive(false);
    res.body() = absl::StrCat(R"({"error": {"message": ")", message,
                              R"(", "type": "invalid_request_error", "param": null, "code": null}})");
    res.prepare_payload();
    stream.expires_after(options.write_timeout);
    co_await http::async_write(stream, res, kTuple);
  }

  net::awaitable<void> Session(std::shared_ptr<beast::tcp_stream> owned) {
    auto self = shared_from_this();
    beast::tcp_stream& stream = *owned;
    ++connections;
    bool linger = false;
    beast::flat_buffer buffer;
    while (!stopping) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(kMaxHeaderBytes);
      parser.body_limit(options.max_body_bytes);
      stream.expires_after(options.header_timeout);
      SetIdle(owned, true);
      if (stopping) {  // Stop() may have looked at the idle set just before we joined it
        SetIdle(owned, false);
        break;
      }
      auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kTuple);
      SetIdle(owned, false);
      if (ec == http::error::header_limit) {
        co_await SendError(stream, 11, http::status::request_header_fields_too_large,
                           "request headers exceed 16 KiB");
        linger = true;
        break;
      }
      // Beast refuses a declared Content-Length over the limit while parsing the header.
      if (ec == http::error::body_limit ||
          (!ec && parser.content_length() && *parser.content_length() > options.max_body_bytes)) {
        const auto length = parser.content_length();
        std::string message = absl::StrCat("request body of ", length ? *length : 0,
                                           " bytes exceeds the limit of ", options.max_body_bytes);
        co_await SendError(stream, parser.get().version(), http::status::payload_too_large,
                           std::move(message));
        linger = true;
        break;
      }
      if (ec) break;  // closed, timed out, or not HTTP
      const unsigned version = parser.get().version();
      stream.expires_after(options.body_timeout);
      std::tie(ec, n) = co_await http::async_read(stream, buffer, parser, kTuple);
      if (ec == http::error::body_limit) {
        std::string message =
            absl::StrCat("request body exceeds the limit of ", options.max_body_bytes, " bytes");
        co_await SendError(stream, version, http::status::payload_too_large, std::move(message));
        linger = true;
        break;
      }
      if (ec) break;
      HttpRequest request = parser.release();
      Exchange exchange(stream, request, options.write_timeout);
      stream.expires_never();  // the handler sets its own write deadlines
      co_await handler(exchange);
      if (!exchange.responded()) {
        std::string body =
            R"({"error": {"message": "no response", "type": "server_error", "param": null, "code": null}})";
        co_await exchange.Send(500, "application/json", std::move(body), {});
      }
      if (!exchange.keep_alive() || !request.keep_alive()) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    if (linger) {
      // The client may still be sending the body we refused: read and drop it for a while, so
      // closing does not reset the connection before the client has read our answer.
      std::vector<char> sink(64 << 10);
      stream.expires_after(kLingerTime);
      for (;;) {
        auto [read_ec, read] = co_await stream.async_read_some(net::buffer(sink), kTuple);
        if (read_ec) break;
      }
    }
    --connections;
  }
};

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              Handler handler) {
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  impl->handler = std::move(handler);
  beast::error_code ec;
  const auto address = net::ip::make_address(options.host, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("http: bad address '", options.host, "'"));
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(options.port));
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("http: cannot listen on ", options.host, ":",
                                               options.port, ": ", ec.message()));
  }
  impl->port = impl->acceptor.local_endpoint().port();
  net::co_spawn(impl->io, impl->Accept(), net::detached);
  for (int i = 0; i < std::max(1, options.threads); ++i) {
    impl->threads.emplace_back([io = &impl->io] { io->run(); });
  }
  STRATA_LOG_INFO("http: listening on {}:{}", options.host, impl->port);
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  Impl& s = *impl_;
  if (s.stopped) return;
  s.stopped = true;
  s.stopping = true;
  net::post(s.io, [&s] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
  });
  {
    // Idle keep-alive connections would otherwise wait out their header timeout.
    std::lock_guard<std::mutex> lock(s.idle_mu);
    for (const auto& stream : s.idle) {
      net::post(stream->get_executor(), [weak = std::weak_ptr<beast::tcp_stream>(stream)] {
        if (auto idle_stream = weak.lock()) idle_stream->cancel();
      });
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + s.options.shutdown_grace;
  while (s.connections > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  s.io.stop();
  for (std::thread& t : s.threads) t.join();
}

int HttpServer::port() const { return impl_->port; }
int64_t HttpServer::open_connections() const { return impl_->connections; }

}  // namespace strata::gateway

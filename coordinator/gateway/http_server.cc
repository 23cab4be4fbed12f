#include "coordinator/gateway/http_server.h"

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <map>
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
#include "boost/beast/core/string.hpp"
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

// A response as Beast writes it, from its parts.
http::response<http::string_body> Response(int status, unsigned version,
                                           std::string_view content_type, std::string body,
                                           const std::vector<std::pair<std::string, std::string>>& headers) {
  http::response<http::string_body> res{static_cast<http::status>(status), version};
  res.set(http::field::server, "strata");
  res.set(http::field::content_type, content_type);
  for (const auto& [name, value] : headers) res.set(name, value);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

// A disconnect watch: the socket turning readable with nothing to read means the client closed.
struct DisconnectWatch {
  std::function<void()> on_gone;
  bool active = true;
};

void ArmWatch(tcp::socket& socket, std::shared_ptr<DisconnectWatch> watch) {
  socket.async_wait(tcp::socket::wait_read, [&socket, watch](boost::system::error_code ec) {
    if (!watch->active) return;  // the response started (or the exchange ended): socket may be gone
    if (!ec) {
      char byte;
      const ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n > 0) return;  // the next request, pipelined: the client is still there
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        ArmWatch(socket, std::move(watch));
        return;
      }
    }
    watch->active = false;
    watch->on_gone();
  });
}

class Exchange : public HttpExchange {
 public:
  Exchange(beast::tcp_stream& stream, HttpRequest& request, std::chrono::milliseconds write_timeout)
      : stream_(stream), request_(request), write_timeout_(write_timeout) {
    const std::string_view target(request_.target().data(), request_.target().size());
    const size_t q = target.find('?');
    path_ = target.substr(0, q);
    if (q != std::string_view::npos) query_ = target.substr(q + 1);
  }
  ~Exchange() override { StopWatch(); }

  const HttpRequest& request() const override { return request_; }
  std::string_view path() const override { return path_; }
  std::string_view query() const override { return query_; }
  net::any_io_executor executor() override { return stream_.get_executor(); }
  bool responded() const override { return status_ != 0; }
  int status() const override { return status_; }
  bool keep_alive() const { return keep_alive_; }

  void OnRespond(std::function<void(int)> callback) override { on_respond_ = std::move(callback); }

  void WatchForDisconnect(std::function<void()> on_gone) override {
    StopWatch();
    watch_ = std::make_shared<DisconnectWatch>();
    watch_->on_gone = std::move(on_gone);
    ArmWatch(stream_.socket(), watch_);
  }

  net::awaitable<void> Send(int status, std::string_view content_type, std::string body,
                            std::vector<std::pair<std::string, std::string>> headers) override {
    Responding(status);
    auto res = Response(status, request_.version(), content_type, std::move(body), headers);
    res.keep_alive(request_.keep_alive() && keep_alive_);
    keep_alive_ = res.keep_alive();
    stream_.expires_after(write_timeout_);
    auto [ec, n] = co_await http::async_write(stream_, res, kTuple);
    if (ec) keep_alive_ = false;
  }

  // HTTP/1.1 streams in chunks; an HTTP/1.0 client knows no chunks, so its stream is the raw
  // bytes and ends when the connection closes.
  net::awaitable<bool> StartStream(int status, std::string_view content_type) override {
    Responding(status);
    chunked_ = request_.version() >= 11;
    http::response<http::empty_body> res{static_cast<http::status>(status), request_.version()};
    res.set(http::field::server, "strata");
    res.set(http::field::content_type, content_type);
    res.set(http::field::cache_control, "no-cache");
    res.keep_alive(chunked_ && request_.keep_alive());
    keep_alive_ = res.keep_alive();
    res.chunked(chunked_);
    http::response_serializer<http::empty_body> serializer{res};
    stream_.expires_after(write_timeout_);
    auto [ec, n] = co_await http::async_write_header(stream_, serializer, kTuple);
    co_return Ok(ec);
  }

  net::awaitable<bool> WriteChunk(std::string data) override {
    if (broken_) co_return false;
    if (data.empty()) co_return true;
    stream_.expires_after(write_timeout_);
    boost::system::error_code ec;
    if (chunked_) {
      std::tie(ec, std::ignore) =
          co_await net::async_write(stream_, http::make_chunk(net::buffer(data)), kTuple);
    } else {
      std::tie(ec, std::ignore) = co_await net::async_write(stream_, net::buffer(data), kTuple);
    }
    co_return Ok(ec);
  }

  net::awaitable<bool> EndStream() override {
    if (broken_) co_return false;
    if (!chunked_) co_return true;  // the session closes the connection
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

  void Responding(int status) {
    StopWatch();
    status_ = status;
    if (on_respond_) on_respond_(status);
  }

  void StopWatch() {
    if (watch_ == nullptr) return;
    watch_->active = false;
    watch_.reset();
    boost::system::error_code ignored;
    stream_.socket().cancel(ignored);  // only the watch's wait is pending here
  }

  beast::tcp_stream& stream_;
  HttpRequest& request_;
  const std::chrono::milliseconds write_timeout_;
  std::string_view path_, query_;
  int status_ = 0;
  bool keep_alive_ = true;
  bool broken_ = false;
  bool chunked_ = true;
  std::shared_ptr<DisconnectWatch> watch_;
  std::function<void(int)> on_respond_;
};

// A malformed request line or header: answered with 400 (a closed, reset or silent connection
// has nobody to answer).
bool IsMalformedRequest(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message &&
         ec != http::error::header_limit && ec != http::error::body_limit;
}

bool ExpectsContinue(const HttpRequestHeader& header) {
  const auto expect = header[http::field::expect];
  return beast::iequals(std::string_view(expect.data(), expect.size()), "100-continue");
}

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
  std::set<std::shared_ptr<beast::tcp_stream>> live;  // every open connection (idle_mu)
  std::mutex clients_mu;
  std::map<net::ip::address, int64_t> per_client;  // open connections by remote address

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
      beast::error_code no_peer;
      const net::ip::address peer = socket.remote_endpoint(no_peer).address();
      auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
      if (connections >= options.max_connections) {
        net::co_spawn(executor,
                      Refuse(std::move(stream), 503,
                             absl::StrCat("too many connections (", options.max_connections,
                                          "); retry shortly")),
                      net::detached);
      } else if (!TakeClientSlot(peer)) {
        net::co_spawn(executor,
                      Refuse(std::move(stream), 429,
                             absl::StrCat("too many connections from your address (",
                                          options.max_connections_per_client,
                                          "); close some or retry shortly")),
                      net::detached);
      } else {
        net::co_spawn(executor, Session(std::move(stream), peer), net::detached);
      }
    }
  }

  // Answers `refusal` and closes, leaving the client time to read it (see Linger).
  net::awaitable<void> SendRefusal(beast::tcp_stream& stream, unsigned version,
                                   const HttpRefusal& refusal) {
    auto res = Response(refusal.status, version, refusal.content_type, refusal.body,
                        refusal.headers);
    res.keep_alive(false);
    stream.expires_after(options.write_timeout);
    co_await http::async_write(stream, res, kTuple);
  }

  static HttpRefusal Error(int status, std::string_view message,
                           std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpRefusal r;
    r.status = status;
    r.body = absl::StrCat(R"({"error": {"message": ")",
                          absl::string_view(message.data(), message.size()),
                          R"(", "type": "invalid_request_error", "param": null, "code": null}})");
    r.headers = std::move(headers);
    return r;
  }

  // Over a connection limit: `status` at once, without reading the request.
  net::awaitable<void> Refuse(std::shared_ptr<beast::tcp_stream> owned, int status,
                              std::string message) {
    auto self = shared_from_this();
    std::vector<std::pair<std::string, std::string>> retry;
    retry.emplace_back("Retry-After", "1");
    co_await SendRefusal(*owned, 11, Error(status, message, std::move(retry)));
    co_await Linger(*owned, std::chrono::seconds(1));
  }

  // Shuts our side and reads what the client still sends for a while, so that closing does not
  // reset the connection before the client has read our answer.
  net::awaitable<void> Linger(beast::tcp_stream& stream, std::chrono::seconds time) {
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    std::vector<char> sink(64 << 10);
    stream.expires_after(time);
    for (;;) {
      auto [read_ec, read] = co_await stream.async_read_some(net::buffer(sink), kTuple);
      if (read_ec) break;
    }
  }

  // Counts a connection from `peer` against its limit; false when it is reached.
  bool TakeClientSlot(const net::ip::address& peer) {
    if (options.max_connections_per_client <= 0) return true;
    std::lock_guard<std::mutex> lock(clients_mu);
    int64_t& open = per_client[peer];
    if (open >= options.max_connections_per_client) return false;
    ++open;
    return true;
  }
  void ReleaseClientSlot(const net::ip::address& peer) {
    if (options.max_connections_per_client <= 0) return;
    std::lock_guard<std::mutex> lock(clients_mu);
    auto it = per_client.find(peer);
    if (it != per_client.end() && --it->second <= 0) per_client.erase(it);
  }

  net::awaitable<void> Session(std::shared_ptr<beast::tcp_stream> owned, net::ip::address peer) {
    auto self = shared_from_this();
    beast::tcp_stream& stream = *owned;
    ++connections;
    {
      std::lock_guard<std::mutex> lock(idle_mu);
      live.insert(owned);
    }
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
      std::optional<HttpRefusal> refusal;
      if (ec == http::error::header_limit) {
        refusal = Error(431, "request headers exceed 16 KiB");
      } else if (ec == http::error::body_limit ||  // Beast checks a declared Content-Length here
                 (!ec && parser.content_length() &&
                  *parser.content_length() > options.max_body_bytes)) {
        // Beast refuses a declared length over the limit before the header is complete, when
        // the parser may not be asked for it (and the length may not fit 64 bits).
        const auto length =
            parser.is_header_done() ? parser.content_length() : boost::optional<std::uint64_t>();
        refusal = Error(413, length ? absl::StrCat("request body of ", *length,
                                                   " bytes exceeds the limit of ",
                                                   options.max_body_bytes)
                                    : absl::StrCat("request body exceeds the limit of ",
                                                   options.max_body_bytes, " bytes"));
      } else if (IsMalformedRequest(ec)) {
        refusal = Error(400, absl::StrCat("malformed HTTP request: ", ec.message()));
      } else if (ec) {
        break;  // closed or timed out
      } else if (options.admit) {
        refusal = options.admit(parser.get().base());
      }
      const unsigned version = ec ? 11 : parser.get().version();
      if (refusal) {
        co_await SendRefusal(stream, version, *refusal);
        linger = true;
        break;
      }
      if (ExpectsContinue(parser.get().base())) {
        http::response<http::empty_body> go_on{http::status::continue_, version};
        stream.expires_after(options.write_timeout);
        std::tie(ec, n) = co_await http::async_write(stream, go_on, kTuple);
        if (ec) break;
      }
      stream.expires_after(options.body_timeout);
      std::tie(ec, n) = co_await http::async_read(stream, buffer, parser, kTuple);
      if (ec == http::error::body_limit) {
        std::string message =
            absl::StrCat("request body exceeds the limit of ", options.max_body_bytes, " bytes");
        co_await SendRefusal(stream, version, Error(413, message));
        linger = true;
        break;
      }
      if (IsMalformedRequest(ec)) {
        co_await SendRefusal(stream, version,
                             Error(400, absl::StrCat("malformed HTTP request: ", ec.message())));
        linger = true;
        break;
      }
      if (ec) break;
      HttpRequest request = parser.release();
      bool keep_alive = false;
      {
        Exchange exchange(stream, request, options.write_timeout);
        stream.expires_never();  // the handler sets its own write deadlines
        co_await handler(exchange);
        if (!exchange.responded()) {
          std::string body =
              R"({"error": {"message": "no response", "type": "server_error", "param": null, "code": null}})";
          co_await exchange.Send(500, "application/json", std::move(body), {});
        }
        keep_alive = exchange.keep_alive() && request.keep_alive();
      }
      if (!keep_alive) break;
    }
    if (linger) {
      co_await Linger(stream, kLingerTime);
    } else {
      beast::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
    {
      std::lock_guard<std::mutex> lock(idle_mu);
      live.erase(owned);
    }
    ReleaseClientSlot(peer);
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
  if (s.connections > 0) {
    // The grace is over: close what is still open, so its clients see the connection end
    // instead of waiting on a server that no longer runs.
    {
      std::lock_guard<std::mutex> lock(s.idle_mu);
      for (const auto& stream : s.live) {
        net::post(stream->get_executor(), [weak = std::weak_ptr<beast::tcp_stream>(stream)] {
          if (auto open = weak.lock()) open->close();
        });
      }
    }
    const auto closed = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (s.connections > 0 && std::chrono::steady_clock::now() < closed) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  s.io.stop();
  for (std::thread& t : s.threads) t.join();
}

int HttpServer::port() const { return impl_->port; }
int64_t HttpServer::open_connections() const { return impl_->connections; }

}  // namespace strata::gateway

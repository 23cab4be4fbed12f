#include "tests/testing/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/http.hpp"

namespace strata::testing {

namespace http = boost::beast::http;

HttpResponse HttpRequest(int port, const std::string& method, const std::string& path,
                         const std::string& body, const std::string& api_key) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  boost::asio::ip::tcp::resolver resolver(io);
  boost::system::error_code ec;
  boost::asio::connect(socket, resolver.resolve("127.0.0.1", std::to_string(port)), ec);
  if (ec) return {0, ec.message(), "", ""};
  http::request<http::string_body> req{http::string_to_verb(method), path, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();
  http::write(socket, req, ec);
  if (ec) return {0, ec.message(), "", ""};
  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256 << 20);
  http::read(socket, buffer, parser, ec);
  if (ec) return {0, ec.message(), "", ""};
  const auto& res = parser.get();
  return {static_cast<int>(res.result_int()), res.body(), std::string(res["Retry-After"]),
          std::string(res[http::field::content_type])};
}

struct RawConnection::Impl {
  int fd = -1;
  std::string pending;  // read past the last ReadUntil's needle

  // Waits until `deadline` for bytes and appends them to `out`: > 0 bytes read, 0 the peer
  // closed or reset the connection, -1 nothing came in time.
  ssize_t Receive(std::chrono::steady_clock::time_point deadline, std::string& out) const {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (fd < 0 || left.count() <= 0) return -1;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return -1;
    char buf[16384];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return 0;
    out.append(buf, static_cast<size_t>(n));
    return n;
  }
};

RawConnection::RawConnection(int port) : impl_(std::make_unique<Impl>()) {
  impl_->fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (impl_->fd >= 0 &&
      ::connect(impl_->fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(impl_->fd);
    impl_->fd = -1;
  }
}

RawConnection::~RawConnection() { Close(); }

bool RawConnection::connected() const { return impl_->fd >= 0; }

bool RawConnection::Send(const std::string& bytes) {
  size_t sent = 0;
  while (impl_->fd >= 0 && sent < bytes.size()) {
    const ssize_t n = ::send(impl_->fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return impl_->fd >= 0;
}

std::string RawConnection::ReadUntil(const std::string& needle, std::chrono::milliseconds timeout) {
  std::string out = std::move(impl_->pending);
  impl_->pending.clear();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (impl_->fd >= 0) {
    if (!needle.empty()) {
      if (size_t at = out.find(needle); at != std::string::npos) {
        impl_->pending = out.substr(at + needle.size());
        out.resize(at + needle.size());
        return out;
      }
    }
    if (impl_->Receive(deadline, out) <= 0) break;
  }
  return out;
}

std::string RawConnection::ReadToEnd(std::chrono::milliseconds timeout, bool* closed) {
  std::string out = std::move(impl_->pending);
  impl_->pending.clear();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (closed != nullptr) *closed = false;
  while (impl_->fd >= 0) {
    const ssize_t n = impl_->Receive(deadline, out);
    if (n == 0 && closed != nullptr) *closed = true;
    if (n <= 0) break;
  }
  return out;
}

void RawConnection::Close() {
  if (impl_ && impl_->fd >= 0) {
    ::close(impl_->fd);
    impl_->fd = -1;
  }
}

}  // namespace strata::testing

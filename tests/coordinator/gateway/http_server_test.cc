// The HTTP server against clients that misbehave or are old: malformed request lines, HTTP/1.0,
// `Expect: 100-continue`, unauthenticated uploads refused before their bodies, connection
// floods, and clients that leave while their answer is being computed.
#include "coordinator/gateway/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "boost/asio/as_tuple.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "gtest/gtest.h"
#include "tests/testing/http_client.h"

namespace strata::gateway {
namespace {

namespace net = boost::asio;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::RawConnection;

// Routes: /echo answers the body; /stream streams two lines; /wait holds its answer for 20 s
// (/wait?short: 500 ms) unless the client leaves first; /private/... is refused by `admit`.
class HttpServerTest : public ::testing::Test {
 protected:
  void Start(int64_t max_connections = 4096, int64_t max_connections_per_client = 0) {
    HttpServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.max_connections = max_connections;
    options.max_connections_per_client = max_connections_per_client;
    options.shutdown_grace = seconds(1);
    options.admit = [this](const HttpRequestHeader& header) -> std::optional<HttpRefusal> {
      ++admitted_;
      if (!std::string_view(header.target().data(), header.target().size()).starts_with("/private")) {
        return std::nullopt;
      }
      HttpRefusal refusal;
      refusal.status = 401;
      refusal.body = R"({"error": "no key"})";
      return refusal;
    };
    auto server = HttpServer::Start(options, [this](HttpExchange& exchange) {
      return Handle(exchange);
    });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  void TearDown() override {
    if (server_) server_->Stop();
  }

  net::awaitable<void> Handle(HttpExchange& exchange) {
    if (exchange.path() == "/stream") {
      co_await exchange.StartStream(200, "text/plain");
      co_await exchange.WriteChunk("one\n");
      co_await exchange.WriteChunk("two\n");
      co_await exchange.EndStream();
    } else if (exchange.path() == "/wait") {
      ++waiting_;
      const milliseconds hold = exchange.query() == "short" ? milliseconds(500) : seconds(20);
      auto timer = std::make_shared<net::steady_timer>(exchange.executor(), hold);
      exchange.WatchForDisconnect([this, timer] {
        ++gone_;
        timer->cancel();
      });
      co_await timer->async_wait(net::as_tuple(net::use_awaitable));
      co_await exchange.Send(200, "text/plain", "waited");
    } else {
      co_await exchange.Send(200, "text/plain", exchange.request().body());
    }
  }

  // `n` keep-alive connections, each with one request answered (open and counted), or fewer
  // when one failed.
  std::vector<std::unique_ptr<RawConnection>> HoldConnections(int n) {
    std::vector<std::unique_ptr<RawConnection>> held;
    for (int i = 0; i < n; ++i) {
      auto c = std::make_unique<RawConnection>(server_->port());
      c->Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok");
      if (!c->ReadUntil("ok", seconds(10)).ends_with("ok")) break;
      held.push_back(std::move(c));
    }
    return held;
  }

  void WaitUntilNoConnections() {
    const auto deadline = std::chrono::steady_clock::now() + seconds(10);
    while (server_->open_connections() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(10));
    }
  }

  // Waits up to `limit` for `counter` to reach `value`.
  static bool WaitFor(const std::atomic<int>& counter, int value, milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (counter < value && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    return counter >= value;
  }

  std::unique_ptr<HttpServer> server_;
  std::atomic<int> admitted_{0}, waiting_{0}, gone_{0};
};

// A request still in progress when the shutdown grace runs out has its connection closed, so
// its client sees the end instead of waiting on a server that no longer runs.
TEST_F(HttpServerTest, StopClosesWhatOutlivesTheGrace) {
  Start();  // grace: 1 s
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(WaitFor(waiting_, 1, seconds(10)));
  const auto start = std::chrono::steady_clock::now();
  std::thread stopper([this] { server_->Stop(); });
  bool closed = false;
  c.ReadToEnd(seconds(15), &closed);
  const auto took = std::chrono::steady_clock::now() - start;
  stopper.join();
  EXPECT_TRUE(closed);
  EXPECT_LT(took, seconds(5));
  EXPECT_EQ(server_->open_connections(), 0);
}

TEST_F(HttpServerTest, AMalformedRequestLineIsAnswered400) {
  Start();
  for (const char* garbage : {"GARBAGE\r\n\r\n", "GET / HTTP/9.Z\r\n\r\n", "\x16\x03\x01\x02\x00\x01\r\n\r\n"}) {
    RawConnection c(server_->port());
    ASSERT_TRUE(c.connected());
    c.Send(garbage);
    bool closed = false;
    const std::string answer = c.ReadToEnd(seconds(10), &closed);
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 400")) << answer;
    EXPECT_NE(answer.find("malformed HTTP request"), std::string::npos) << answer;
    EXPECT_TRUE(closed);
  }
}

// Found by http_request_fuzz: Beast refuses an oversized Content-Length before the header is
// complete, and the parser must not then be asked for the length (an assertion in Beast).
TEST_F(HttpServerTest, AnOversizedContentLengthIsAnswered413) {
  Start();
  for (const char* length : {"00000000000000000000000000000015636497906230362112",
                             "18446744073709551616", "99999999999"}) {
    RawConnection c(server_->port());
    ASSERT_TRUE(c.connected());
    c.Send(std::string("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: ") + length +
           "\r\nX-After: 1\r\n\r\n}");
    bool closed = false;
    const std::string answer = c.ReadToEnd(seconds(10), &closed);
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 413") || answer.starts_with("HTTP/1.1 400"))
        << length << ": " << answer;
    EXPECT_TRUE(closed);
  }
  RawConnection d(server_->port());  // and it serves on
  d.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nagain");
  EXPECT_TRUE(d.ReadUntil("again", seconds(10)).ends_with("again"));
}

TEST_F(HttpServerTest, AnHttp10StreamIsNotChunkedAndEndsByClosing) {
  Start();
  RawConnection c(server_->port());
  c.Send("GET /stream HTTP/1.0\r\n\r\n");
  bool closed = false;
  const std::string answer = c.ReadToEnd(seconds(10), &closed);
  EXPECT_TRUE(closed);
  EXPECT_TRUE(answer.starts_with("HTTP/1.0 200")) << answer;
  EXPECT_EQ(answer.find("chunked"), std::string::npos) << answer;
  EXPECT_TRUE(answer.ends_with("\r\n\r\none\ntwo\n")) << answer;

  // HTTP/1.1 still gets chunks and keeps the connection.
  RawConnection d(server_->port());
  d.Send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string chunked = d.ReadUntil("0\r\n\r\n", seconds(10));
  EXPECT_NE(chunked.find("Transfer-Encoding: chunked"), std::string::npos) << chunked;
  d.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nagain");
  EXPECT_TRUE(d.ReadUntil("again", seconds(10)).ends_with("again"));
}

TEST_F(HttpServerTest, ExpectContinueIsAnsweredBeforeTheBodyIsSent) {
  Start();
  RawConnection c(server_->port());
  c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  const std::string go_on = c.ReadUntil("\r\n\r\n", seconds(10));
  EXPECT_TRUE(go_on.starts_with("HTTP/1.1 100 Continue")) << go_on;
  c.Send("hello");
  const std::string answer = c.ReadUntil("hello", seconds(10));
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 200")) << answer;
  EXPECT_TRUE(answer.ends_with("hello")) << answer;
}

TEST_F(HttpServerTest, ARefusedRequestIsAnsweredBeforeItsBodyIsRead) {
  Start();
  RawConnection c(server_->port());
  // Announce 8 MB and send none of it: the answer must not wait for the body.
  c.Send("POST /private/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 8000000\r\n"
         "Expect: 100-continue\r\n\r\n");
  bool closed = false;
  const auto start = std::chrono::steady_clock::now();
  const std::string answer = c.ReadToEnd(seconds(20), &closed);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 401")) << answer;
  EXPECT_EQ(answer.find("100 Continue"), std::string::npos) << answer;
  EXPECT_NE(answer.find("no key"), std::string::npos) << answer;
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(15));  // linger ends it, not a body timeout
}

TEST_F(HttpServerTest, ConnectionsBeyondTheLimitAreRefused503WithRetryAfter) {
  Start(/*max_connections=*/2);
  std::vector<std::unique_ptr<RawConnection>> held = HoldConnections(2);
  ASSERT_EQ(held.size(), 2u);
  RawConnection third(server_->port());
  bool closed = false;
  const std::string answer = third.ReadToEnd(seconds(10), &closed);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 503")) << answer;
  EXPECT_NE(answer.find("Retry-After: 1"), std::string::npos) << answer;
  EXPECT_NE(answer.find("too many connections"), std::string::npos) << answer;
  EXPECT_TRUE(closed);
  held.clear();  // once they close, a new client is served again
  WaitUntilNoConnections();
  EXPECT_EQ(testing::HttpPost(server_->port(), "/echo", "{}").status, 200);
}

// One request over a connection made from `source` (a loopback address) to 127.0.0.1:port: the
// status line, or "" when the connection failed.
std::string StatusLineFrom(const char* source, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in from{}, to{};
  from.sin_family = to.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &from.sin_addr);
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  to.sin_port = htons(static_cast<uint16_t>(port));
  std::string answer;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) == 0 &&
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0) {
    const std::string request = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                "Connection: close\r\n\r\nok";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) > 0) {
      char buf[512];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) answer.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return answer.substr(0, answer.find("\r\n"));
}

// One address holding its share of connections gets 429 for more; another address does not.
TEST_F(HttpServerTest, ConnectionsBeyondTheLimitPerClientAreRefused429) {
  Start(/*max_connections=*/4096, /*max_connections_per_client=*/2);
  std::vector<std::unique_ptr<RawConnection>> held = HoldConnections(2);
  ASSERT_EQ(held.size(), 2u);
  RawConnection third(server_->port());
  bool closed = false;
  const std::string answer = third.ReadToEnd(seconds(10), &closed);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 429")) << answer;
  EXPECT_NE(answer.find("Retry-After: 1"), std::string::npos) << answer;
  EXPECT_NE(answer.find("too many connections from your address (2)"), std::string::npos)
      << answer;
  EXPECT_EQ(StatusLineFrom("127.0.0.2", server_->port()), "HTTP/1.1 200 OK");
  held.clear();  // once they close, the address is served again
  WaitUntilNoConnections();
  EXPECT_EQ(testing::HttpPost(server_->port(), "/echo", "{}").status, 200);
}

TEST_F(HttpServerTest, AClientThatLeavesIsNoticedBeforeTheAnswer) {
  Start();
  RawConnection c(server_->port());
  c.Send("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(WaitFor(waiting_, 1, seconds(10)));
  c.Close();
  EXPECT_TRUE(WaitFor(gone_, 1, seconds(10)));
}

TEST_F(HttpServerTest, APipelinedRequestIsNotALeavingClient) {
  Start();
  RawConnection c(server_->port());
  c.Send("GET /wait?short HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(WaitFor(waiting_, 1, seconds(10)));
  c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nnext");
  // Both answers, in order: the watch neither took the second request for a leaving client
  // nor consumed its bytes.
  const std::string answers = c.ReadUntil("next", seconds(10));
  EXPECT_NE(answers.find("waited"), std::string::npos) << answers;
  EXPECT_TRUE(answers.ends_with("next")) << answers;
  EXPECT_LT(answers.find("waited"), answers.find("next"));
  EXPECT_EQ(gone_, 0);
}

}  // namespace
}  // namespace strata::gateway

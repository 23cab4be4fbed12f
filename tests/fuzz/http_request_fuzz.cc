// Fuzz target: the HTTP request path. Each input is the raw bytes a client sends on one
// connection to a real gateway (API key "fuzz-key", every route: OpenAI, Ollama, tokenize,
// metrics) in front of a real engine running a small model in process. The client sends the
// bytes, closes its side and reads until the server closes (at most 2 s: a long generation is
// then abandoned, which cancels it). The server must never crash, and must still answer a
// well-formed request afterwards. Run with -detect_leaks=0: the server's threads free a
// connection's state after the input returns, which libFuzzer's per-input leak check would
// take for a leak (ASan still checks every access).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "coordinator/chat/template_source.h"
#include "coordinator/engine/engine.h"
#include "coordinator/gateway/gateway.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"
#include "worker/runtime/local_executor.h"

namespace strata::fuzz {
namespace {

struct Server {
  std::unique_ptr<LocalExecutor> executor;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  chat::ChatTemplates templates;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<engine::ReplicaRouter> router;
  std::unique_ptr<gateway::Gateway> gateway;
};

template <typename T>
T Check(absl::StatusOr<T> value) {
  if (!value.ok()) PropertyFailed(value.status().ToString());
  return *std::move(value);
}

Server& TheServer() {
  static Server* server = [] {
    QuietLogs();
    auto* s = new Server;
    LocalExecutorOptions local;
    // Context 96: a chat request without max_tokens generates what is left of it, and the
    // paths under test (codecs, streaming, stops, cancellation) are all reached within a few
    // tokens; one compute thread leaves the other core to the fuzzer.
    local.model = SmallModel(96);
    local.backend.threads = 1;
    local.kv_tokens = 4096;
    local.max_step_tokens = 512;
    s->executor = Check(LocalExecutor::Create(local));
    s->tokenizer = Check(tokenizer::LoadTokenizer(local.model));
    s->templates = Check(chat::LoadChatTemplates(local.model));
    engine::EngineOptions engine;
    engine.scheduler.max_batched_tokens = 512;
    s->engine = Check(engine::Engine::Start(*s->executor, s->tokenizer.get(), engine));
    gateway::GatewayOptions options;
    options.http.host = "127.0.0.1";
    options.http.port = 0;
    options.http.max_body_bytes = 64 << 10;
    options.http.header_timeout = std::chrono::seconds(5);
    options.http.body_timeout = std::chrono::seconds(5);
    options.http.shutdown_grace = std::chrono::seconds(1);
    options.model_name = "small";
    options.api_keys = {"fuzz-key"};
    options.open_health_and_metrics = true;
    options.max_waiting = 64;
    s->router = Check(engine::ReplicaRouter::Create({{s->executor.get(), s->engine.get()}}));
    s->gateway = Check(gateway::Gateway::Start(*s->router, *s->tokenizer, &s->templates, options));
    return s;
  }();
  return *server;
}

// connect() that survives a signal: libFuzzer's -timeout alarm (SIGALRM every timeout/2 + 1 s,
// installed without SA_RESTART) interrupts this thread's system calls, and an interrupted
// connect() goes on in the background. Returns 0 or the errno.
int Connect(int fd, const sockaddr_in& addr) {
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return 0;
  if (errno != EINTR) return errno;
  pollfd wait{.fd = fd, .events = POLLOUT, .revents = 0};
  while (poll(&wait, 1, -1) < 0) {
    if (errno != EINTR) return errno;
  }
  int error = 0;
  socklen_t length = sizeof error;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) return errno;
  return error;
}

// Sends `bytes` on a new connection, half-closes it, and returns what came back before the
// server closed (or 2 s passed without a byte). System calls interrupted by a signal are retried.
std::string Exchange(int port, const uint8_t* data, size_t size) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) PropertyFailed("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (const int error = Connect(fd, addr); error != 0) {
    close(fd);
    PropertyFailed(std::string("the gateway refused a connection (did it die?): ") +
                   std::strerror(error));
  }
  timeval timeout{.tv_sec = 2, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  size_t sent = 0;
  while (sent < size) {
    const ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the server answered early (a refusal) and closed
    sent += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  std::string reply;
  char buffer[16384];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reply.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return reply;
}

}  // namespace
}  // namespace strata::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::fuzz;
  const int port = TheServer().gateway->port();
  Exchange(port, data, size);
  // Every 64th input: the server still answers a well-formed request (a wedged accept loop or
  // io thread would show here). A crash shows at once: the server runs in this process.
  static uint64_t inputs = 0;
  if (inputs++ % 64 != 0) return 0;
  static constexpr char kHealth[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const std::string reply =
      Exchange(port, reinterpret_cast<const uint8_t*>(kHealth), sizeof kHealth - 1);
  if (!reply.starts_with("HTTP/1.1 200")) {
    PropertyFailed("GET /health after the input did not answer 200: " + reply.substr(0, 200));
  }
  return 0;
}

// A blocking HTTP/1.1 client for tests: one request per connection to 127.0.0.1.
#pragma once

#include <chrono>
#include <memory>
#include <string>

namespace strata::testing {

struct HttpResponse {
  int status = 0;  // 0: no answer (connection refused or closed)
  std::string body;
  std::string retry_after;
  std::string content_type;
};

// Sends `method` `path` with `body` (JSON when non-empty) and an optional bearer `api_key`.
// Never throws: a failed connection or read gives status 0 and the error in `body`.
HttpResponse HttpRequest(int port, const std::string& method, const std::string& path,
                         const std::string& body = "", const std::string& api_key = "");

inline HttpResponse HttpGet(int port, const std::string& path, const std::string& api_key = "") {
  return HttpRequest(port, "GET", path, "", api_key);
}
inline HttpResponse HttpPost(int port, const std::string& path, const std::string& body,
                             const std::string& api_key = "") {
  return HttpRequest(port, "POST", path, body, api_key);
}

// A raw TCP connection to 127.0.0.1:port, for requests a well-behaved client would not send
// (malformed, HTTP/1.0, pipelined, half-sent bodies). Never throws.
class RawConnection {
 public:
  explicit RawConnection(int port);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const;
  bool Send(const std::string& bytes);
  // What arrives until `needle` has been read, the peer closes, or `timeout` passes.
  std::string ReadUntil(const std::string& needle, std::chrono::milliseconds timeout);
  // Everything until the peer closes (or `timeout`); `closed` says whether it did.
  std::string ReadToEnd(std::chrono::milliseconds timeout, bool* closed = nullptr);
  void Close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::testing

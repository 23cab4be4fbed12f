// A blocking HTTP/1.1 client for tests: one request per connection to 127.0.0.1.
#pragma once

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

}  // namespace strata::testing

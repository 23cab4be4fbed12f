#include "tests/testing/http_client.h"

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

}  // namespace strata::testing

// Greedy completion requests for integration tests, and what an HTTP/1.0 client reads of a
// streamed one (raw Server-Sent Events, no chunked framing).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "boost/json.hpp"

namespace strata::testing {

// Request `i` of a set: a token-id prompt of 3 + 5i ids, greedy, `max_tokens` ignoring EOS,
// with token ids in the answer, for the served model name "m".
inline boost::json::object GreedyRequest(int i, int64_t max_tokens, bool stream) {
  boost::json::array prompt;
  for (int t = 0; t < 3 + 5 * i; ++t) prompt.push_back(1 + (37 * i + 11 * t) % 300);
  return boost::json::object{{"model", "m"},          {"prompt", prompt},
                             {"max_tokens", max_tokens}, {"temperature", 0},
                             {"ignore_eos", true},     {"return_token_ids", true},
                             {"stream", stream}};
}

// `body` as an HTTP/1.0 POST to /v1/completions.
inline std::string Http10Post(const boost::json::object& body) {
  const std::string text = boost::json::serialize(body);
  return "POST /v1/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(text.size()) + "\r\n\r\n" + text;
}

// The token ids of a stream's events, whether it ended with [DONE] after a finish_reason, and
// the error event it carried instead, if any.
struct Streamed {
  std::vector<int32_t> ids;
  bool finished = false;
  std::string error;
};

inline Streamed ParseStream(const std::string& raw) {
  namespace json = boost::json;
  Streamed out;
  size_t at = 0;
  bool finish_seen = false;
  while ((at = raw.find("data: ", at)) != std::string::npos) {
    at += 6;
    const size_t end = raw.find("\n\n", at);
    if (end == std::string::npos) break;
    const std::string data = raw.substr(at, end - at);
    at = end;
    if (data == "[DONE]") {
      out.finished = finish_seen;
      break;
    }
    boost::system::error_code ec;
    const json::value chunk = json::parse(data, ec);
    if (ec || !chunk.is_object()) {
      out.error = "unparsable event: " + data;
      break;
    }
    if (const json::value* error = chunk.as_object().if_contains("error")) {
      out.error = json::serialize(*error);
      continue;
    }
    for (const json::value& choice : chunk.at("choices").as_array()) {
      for (const json::value& id : choice.at("token_ids").as_array()) {
        out.ids.push_back(static_cast<int32_t>(id.to_number<int64_t>()));
      }
      finish_seen = finish_seen || !choice.at("finish_reason").is_null();
    }
  }
  return out;
}

}  // namespace strata::testing

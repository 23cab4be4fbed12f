// POST /v1/completions and POST /v1/chat/completions, in OpenAI's request and response shapes
// (streaming: Server-Sent Events, one `data: {chunk}` per event, then `data: [DONE]`).
#include <chrono>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "boost/asio/as_tuple.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "common/strings.h"
#include "coordinator/chat/chat_prompt.h"
#include "coordinator/gateway/gateway_internal.h"
#include "coordinator/tokenizer/tokenizer.h"

namespace strata::gateway {
namespace {

namespace net = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr int kMaxStop = 4;
constexpr int kMaxCompletionLogprobs = 5;

// A request the client got wrong: the message, the parameter it concerns and (rarely) a code.
struct BadRequest {
  std::string message;
  std::string param;
  std::string code = "";
};

// A prompt longer than the context (known before encoding) is OpenAI's context_length_exceeded.
BadRequest PromptProblem(const absl::Status& status, std::string param) {
  return BadRequest{std::string(status.message()), std::move(param),
                    status.code() == absl::StatusCode::kOutOfRange ? "context_length_exceeded"
                                                                   : ""};
}

net::awaitable<void> SendBadRequest(HttpExchange& exchange, const BadRequest& bad) {
  std::optional<std::string> param = bad.param, code;
  if (!bad.code.empty()) code = bad.code;
  co_await SendError(exchange, 400, "invalid_request_error", bad.message, std::move(param),
                     std::move(code));
}

enum class Api { kCompletions, kChat };

struct Parsed {
  std::vector<std::vector<int32_t>> prompts;
  engine::GenerationRequest request;  // prompt filled per prompt
  bool stream = false;
  bool include_usage = false;
  bool logprobs = false;              // the response carries logprobs
  bool max_tokens_given = false;
  bool return_token_ids = false;      // vLLM's extension: choices carry their token ids
};

double Number(const json::value& v) { return v.is_double() ? v.as_double() : v.to_number<double>(); }
bool IsNumber(const json::value& v) { return v.is_double() || v.is_int64() || v.is_uint64(); }
bool IsInt(const json::value& v) { return v.is_int64() || v.is_uint64(); }
// An integer's value; a uint64 beyond int64 saturates (every range check here refuses it).
int64_t Int(const json::value& v) {
  if (v.is_int64()) return v.as_int64();
  return v.as_uint64() > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX
                                                          : static_cast<int64_t>(v.as_uint64());
}
// A token id, or a BadRequest naming `param` and the value when it is not an int32 >= 0 (the
// engine then checks it against the vocabulary).
std::optional<BadRequest> TokenId(const json::value& v, const char* param, int32_t& id) {
  if (!IsInt(v)) return BadRequest{absl::StrCat("'", param, "' must hold integer token ids"), param};
  const int64_t x = Int(v);
  if (x < 0 || x > INT32_MAX || (v.is_uint64() && v.as_uint64() > INT32_MAX)) {
    return BadRequest{absl::StrCat("token id ", json::serialize(v), " is outside the vocabulary"),
                      param};
  }
  id = static_cast<int32_t>(x);
  return std::nullopt;
}

json::array TokenIds(const std::vector<int32_t>& ids) {
  json::array out;
  for (int32_t id : ids) out.push_back(id);
  return out;
}

// Reads the sampling parameters both APIs share. Returns the first problem found.
std::optional<BadRequest> ParseCommon(const json::object& body, Api api, Parsed& out) {
  engine::GenerationRequest& r = out.request;
  SamplingParams& p = r.sampling;
  auto number = [&](const char* name, float lo, float hi, float& field) -> std::optional<BadRequest> {
    const json::value* v = body.if_contains(name);
    if (v == nullptr || v->is_null()) return std::nullopt;
    if (!IsNumber(*v)) return BadRequest{absl::StrCat("'", name, "' must be a number"), name};
    const double x = Number(*v);
    if (!(x >= lo && x <= hi)) {
      return BadRequest{absl::StrCat("'", name, "' must be in [", lo, ", ", hi, "], got ", x), name};
    }
    field = static_cast<float>(x);
    return std::nullopt;
  };
  auto integer = [&](const char* name, int64_t lo, int64_t hi,
                     int64_t& field) -> std::optional<BadRequest> {
    const json::value* v = body.if_contains(name);
    if (v == nullptr || v->is_null()) return std::nullopt;
    if (!IsInt(*v)) return BadRequest{absl::StrCat("'", name, "' must be an integer"), name};
    const int64_t x = Int(*v);
    if (x < lo || x > hi) {
      return BadRequest{absl::StrCat("'", name, "' must be in [", lo, ", ", hi, "], got ",
                                     json::serialize(*v)), name};
    }
    field = x;
    return std::nullopt;
  };
  auto boolean = [&](const char* name, bool& field) -> std::optional<BadRequest> {
    const json::value* v = body.if_contains(name);
    if (v == nullptr || v->is_null()) return std::nullopt;
    if (!v->is_bool()) return BadRequest{absl::StrCat("'", name, "' must be a boolean"), name};
    field = v->as_bool();
    return std::nullopt;
  };

  p.temperature = 1.0f;
  if (auto e = number("temperature", 0, 2, p.temperature)) return e;
  if (auto e = number("top_p", 0, 1, p.top_p)) return e;
  if (body.contains("top_p") && p.top_p <= 0) return BadRequest{"'top_p' must be > 0", "top_p"};
  if (auto e = number("min_p", 0, 1, p.min_p)) return e;
  if (auto e = number("presence_penalty", -2, 2, p.presence_penalty)) return e;
  if (auto e = number("frequency_penalty", -2, 2, p.frequency_penalty)) return e;
  if (auto e = number("repetition_penalty", 0.01f, 2, p.repetition_penalty)) return e;
  int64_t top_k = 0;
  if (auto e = integer("top_k", -1, 1 << 30, top_k)) return e;
  p.top_k = top_k < 0 ? 0 : static_cast<int32_t>(top_k);
  int64_t n = 1;
  if (auto e = integer("n", 1, 64, n)) return e;
  r.n = static_cast<int32_t>(n);
  int64_t max_tokens = -1;
  if (auto e = integer("max_tokens", 1, int64_t{1} << 31, max_tokens)) return e;
  if (auto e = integer("max_completion_tokens", 1, int64_t{1} << 31, max_tokens)) return e;
  out.max_tokens_given = max_tokens > 0;
  r.max_tokens = max_tokens > 0 ? max_tokens : (api == Api::kCompletions ? 16 : 0);
  if (const json::value* v = body.if_contains("seed"); v != nullptr && !v->is_null()) {
    if (!IsInt(*v)) return BadRequest{"'seed' must be an integer", "seed"};
    r.seed = v->is_int64() ? static_cast<uint64_t>(v->as_int64()) : v->as_uint64();
  }
  if (auto e = boolean("stream", out.stream)) return e;
  if (auto e = boolean("ignore_eos", r.ignore_eos)) return e;
  if (auto e = boolean("return_token_ids", out.return_token_ids)) return e;
  if (const json::value* v = body.if_contains("stream_options"); v != nullptr && !v->is_null()) {
    if (!v->is_object()) return BadRequest{"'stream_options' must be an object", "stream_options"};
    if (const json::value* u = v->as_object().if_contains("include_usage")) {
      if (!u->is_bool()) {
        return BadRequest{"'stream_options.include_usage' must be a boolean", "stream_options"};
      }
      out.include_usage = u->as_bool();
    }
  }
  if (const json::value* v = body.if_contains("stop"); v != nullptr && !v->is_null()) {
    if (v->is_string()) {
      r.stop.emplace_back(v->as_string());
    } else if (v->is_array() && v->as_array().size() <= kMaxStop) {
      for (const json::value& s : v->as_array()) {
        if (!s.is_string()) return BadRequest{"'stop' must be a string or a list of strings", "stop"};
        r.stop.emplace_back(s.as_string());
      }
    } else {
      return BadRequest{absl::StrCat("'stop' must be a string or a list of up to ", kMaxStop,
                                     " strings"), "stop"};
    }
    for (const std::string& s : r.stop) {
      if (s.empty()) return BadRequest{"'stop' strings must not be empty", "stop"};
    }
  }
  if (const json::value* v = body.if_contains("logit_bias"); v != nullptr && !v->is_null()) {
    if (!v->is_object()) return BadRequest{"'logit_bias' must be an object", "logit_bias"};
    for (const auto& [key, bias] : v->as_object()) {
      int32_t id = 0;
      if (!absl::SimpleAtoi(absl::string_view(key.data(), key.size()), &id) || !IsNumber(bias)) {
        return BadRequest{"'logit_bias' maps token ids (as strings) to numbers", "logit_bias"};
      }
      p.logit_bias.emplace_back(id, static_cast<float>(Number(bias)));
    }
  }
  if (const json::value* v = body.if_contains("user"); v != nullptr && !v->is_null() &&
                                                        !v->is_string()) {
    return BadRequest{"'user' must be a string", "user"};
  }
  if (api == Api::kCompletions) {
    int64_t logprobs = -1;
    if (auto e = integer("logprobs", 0, kMaxCompletionLogprobs, logprobs)) return e;
    p.logprobs = static_cast<int32_t>(logprobs);
    out.logprobs = logprobs >= 0;
    if (const json::value* v = body.if_contains("echo"); v != nullptr && v->is_bool() &&
                                                         v->as_bool()) {
      return BadRequest{"'echo' is not supported", "echo"};
    }
    if (const json::value* v = body.if_contains("suffix"); v != nullptr && !v->is_null()) {
      return BadRequest{"'suffix' is not supported", "suffix"};
    }
    int64_t best_of = r.n;
    if (auto e = integer("best_of", 1, 64, best_of)) return e;
    if (best_of != r.n) return BadRequest{"'best_of' other than 'n' is not supported", "best_of"};
  } else {
    bool logprobs = false;
    if (auto e = boolean("logprobs", logprobs)) return e;
    int64_t top = 0;
    if (auto e = integer("top_logprobs", 0, SamplingParams::kMaxLogprobs, top)) return e;
    if (top > 0 && !logprobs) {
      return BadRequest{"'top_logprobs' needs 'logprobs': true", "top_logprobs"};
    }
    p.logprobs = logprobs ? static_cast<int32_t>(top) : -1;
    out.logprobs = logprobs;
  }
  return std::nullopt;
}

std::optional<BadRequest> ParsePrompts(const json::object& body, const Gateway::State& s,
                                       Parsed& out) {
  const json::value* v = body.if_contains("prompt");
  if (v == nullptr) return BadRequest{"'prompt' is required", "prompt"};
  auto encode = [&](const json::string& text) -> std::optional<BadRequest> {
    auto ids = s.EncodePrompt(std::string_view(text.data(), text.size()));
    if (!ids.ok()) return PromptProblem(ids.status(), "prompt");
    out.prompts.push_back(*std::move(ids));
    return std::nullopt;
  };
  auto ids_of = [&](const json::array& a) -> std::optional<BadRequest> {
    std::vector<int32_t> ids;
    for (const json::value& t : a) {
      int32_t id = 0;
      if (auto e = TokenId(t, "prompt", id)) return e;
      ids.push_back(id);
    }
    out.prompts.push_back(std::move(ids));
    return std::nullopt;
  };
  if (v->is_string()) {
    if (auto e = encode(v->as_string())) return e;
  } else if (v->is_array() && !v->as_array().empty()) {
    const json::array& a = v->as_array();
    if (IsInt(a[0])) {
      if (auto e = ids_of(a)) return e;
    } else {
      for (const json::value& item : a) {
        if (item.is_string()) {
          if (auto e = encode(item.as_string())) return e;
        } else if (item.is_array()) {
          if (auto e = ids_of(item.as_array())) return e;
        } else {
          return BadRequest{"'prompt' must be a string, a list of strings, a list of token ids "
                            "or a list of lists of token ids", "prompt"};
        }
      }
    }
  } else {
    return BadRequest{"'prompt' must be a string, a list of strings, a list of token ids or a "
                      "list of lists of token ids", "prompt"};
  }
  for (const auto& p : out.prompts) {
    if (p.empty()) return BadRequest{"a prompt is empty", "prompt"};
  }
  return std::nullopt;
}

// Chat message content may be a string or a list of {"type": "text", "text": ...} parts.
std::optional<BadRequest> NormalizeMessages(const json::value* v, json::array& messages) {
  if (v == nullptr || !v->is_array() || v->as_array().empty()) {
    return BadRequest{"'messages' must be a non-empty list", "messages"};
  }
  for (const json::value& m : v->as_array()) {
    if (!m.is_object() || !m.as_object().contains("role") ||
        !m.as_object().at("role").is_string()) {
      return BadRequest{"each message needs a string 'role'", "messages"};
    }
    json::object message = m.as_object();
    json::value& content = message["content"];
    if (content.is_array()) {
      std::string text;
      for (const json::value& part : content.as_array()) {
        const json::object* o = part.if_object();
        if (o == nullptr || !o->contains("type") || o->at("type") != "text" ||
            !o->contains("text") || !o->at("text").is_string()) {
          return BadRequest{"only text content parts are supported", "messages"};
        }
        text += std::string(o->at("text").as_string());
      }
      content = json::string(text);
    } else if (!content.is_string() && !content.is_null()) {
      return BadRequest{"message 'content' must be a string or a list of text parts", "messages"};
    }
    messages.push_back(std::move(message));
  }
  return std::nullopt;
}

// Per choice (prompt x sample), what has been produced.
struct Choice {
  std::string text;
  std::vector<int32_t> tokens;
  std::vector<TokenLogprobs> logprobs;
  engine::FinishReason finish = engine::FinishReason::kNone;
  absl::Status error;
  Clock::time_point last_token;
  bool started = false;  // chat streaming: the role chunk went out
};

// The text `id` adds after `prev` (-1: none): decoding in context keeps the leading space a
// SentencePiece token carries, so the tokens of a completion join to its text.
std::string TokenText(const tokenizer::Tokenizer& tok, int32_t prev, int32_t id) {
  if (prev >= 0) {
    auto both = tok.Decode(std::vector<int32_t>{prev, id}, /*skip_special=*/false);
    auto before = tok.Decode(std::vector<int32_t>{prev}, /*skip_special=*/false);
    if (both.ok() && before.ok() && both->starts_with(*before)) return both->substr(before->size());
  }
  auto text = tok.Decode(std::vector<int32_t>{id}, /*skip_special=*/false);
  return text.ok() ? *text : std::string();
}

json::array Bytes(const std::string& s) {
  json::array out;
  for (unsigned char c : s) out.push_back(c);
  return out;
}

// `prev`: the token before tokens[0] (the prompt's last, or the previous event's last).
json::value ChatLogprobs(const tokenizer::Tokenizer& tok, int32_t prev,
                         const std::vector<int32_t>& tokens, const std::vector<TokenLogprobs>& lps) {
  json::array content;
  for (size_t i = 0; i < tokens.size() && i < lps.size(); ++i) {
    const int32_t before = i == 0 ? prev : tokens[i - 1];
    const std::string text = TokenText(tok, before, tokens[i]);
    json::array top;
    for (size_t k = 0; k < lps[i].top_ids.size(); ++k) {
      const std::string alt = TokenText(tok, before, lps[i].top_ids[k]);
      top.push_back(json::object{{"token", alt}, {"logprob", lps[i].top_logprobs[k]},
                                 {"bytes", Bytes(alt)}});
    }
    content.push_back(json::object{{"token", text}, {"logprob", lps[i].logprob},
                                   {"bytes", Bytes(text)}, {"top_logprobs", std::move(top)}});
  }
  return json::object{{"content", std::move(content)}};
}

json::value CompletionLogprobs(const tokenizer::Tokenizer& tok, int32_t prev,
                               const std::vector<int32_t>& tokens,
                               const std::vector<TokenLogprobs>& lps, int64_t offset) {
  json::array texts, values, tops, offsets;
  for (size_t i = 0; i < tokens.size() && i < lps.size(); ++i) {
    const int32_t before = i == 0 ? prev : tokens[i - 1];
    const std::string text = TokenText(tok, before, tokens[i]);
    texts.push_back(json::string(text));
    values.push_back(lps[i].logprob);
    json::object top;
    for (size_t k = 0; k < lps[i].top_ids.size(); ++k) {
      top[TokenText(tok, before, lps[i].top_ids[k])] = lps[i].top_logprobs[k];
    }
    tops.push_back(std::move(top));
    offsets.push_back(offset);
    offset += static_cast<int64_t>(text.size());
  }
  return json::object{{"tokens", std::move(texts)}, {"token_logprobs", std::move(values)},
                      {"top_logprobs", std::move(tops)}, {"text_offset", std::move(offsets)}};
}

const char* FinishName(engine::FinishReason f) {
  return f == engine::FinishReason::kLength ? "length" : "stop";
}

net::awaitable<void> Generate(Gateway::State& s, HttpExchange& exchange, Api api, Parsed parsed) {
  const auto start = Clock::now();
  const tokenizer::Tokenizer& tok = *s.tokenizer;
  const engine::EngineStats stats = s.engine->stats();
  if (stats.waiting >= s.options.max_waiting) {
    std::vector<std::pair<std::string, std::string>> retry;
    retry.emplace_back("Retry-After", "1");
    std::string message = absl::StrCat("the server is overloaded (", stats.waiting,
                                       " sequences waiting); retry shortly");
    co_await SendError(exchange, 503, "service_unavailable_error", message, std::nullopt,
                       std::nullopt, std::move(retry));
    co_return;
  }
  const int n = parsed.request.n;
  const size_t total = parsed.prompts.size() * static_cast<size_t>(n);
  std::vector<Choice> choices(total);
  auto channel = std::make_shared<EventChannel>(exchange.executor(), kEventChannelCapacity);
  std::map<uint64_t, size_t> first_choice;  // engine request id -> its first choice index
  std::vector<uint64_t> ids;
  int64_t prompt_tokens = 0;
  for (size_t p = 0; p < parsed.prompts.size(); ++p) {
    engine::GenerationRequest r = parsed.request;
    r.prompt = parsed.prompts[p];
    r.tenant = KeyId(exchange.request());
    if (!parsed.max_tokens_given && api == Api::kChat) {
      r.max_tokens = std::max<int64_t>(1, s.engine->max_model_len() -
                                              static_cast<int64_t>(r.prompt.size()));
    }
    prompt_tokens += static_cast<int64_t>(r.prompt.size());
    auto id = s.engine->Add(std::move(r), [channel](const engine::SampleOutput& e) {
      return channel->try_send(boost::system::error_code(), e);
    });
    if (!id.ok()) {
      for (uint64_t earlier : ids) s.engine->Cancel(earlier);
      const int status = StatusFor(id.status());
      const bool too_long = absl::StrContains(id.status().message(), "maximum context length");
      // (No conditional expressions inside co_await: GCC 12 destroys their temporaries twice.)
      std::optional<std::string> param, code;
      if (too_long) {
        param = api == Api::kChat ? "messages" : "prompt";
        code = "context_length_exceeded";
      }
      std::string message(id.status().message());
      co_await SendError(exchange, status, ErrorTypeFor(status), message, std::move(param),
                         std::move(code));
      co_return;
    }
    first_choice[*id] = p * n;
    ids.push_back(*id);
  }

  const std::string id = s.NewId(api == Api::kChat ? "chatcmpl" : "cmpl");
  const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count();
  const char* object = api == Api::kChat ? (parsed.stream ? "chat.completion.chunk"
                                                          : "chat.completion")
                                         : "text_completion";
  auto chunk = [&](json::array choices_json) {
    json::object c{{"id", id}, {"object", object}, {"created", created},
                   {"model", s.options.model_name}, {"choices", std::move(choices_json)}};
    if (parsed.include_usage) c["usage"] = nullptr;
    return absl::StrCat("data: ", json::serialize(c), "\n\n");
  };
  // Nothing is written before the first event (a stream starts with it), so a request that
  // never starts (it timed out of the queue) still gets a status; notice a client that leaves
  // before then.
  bool client_gone = false;
  auto gone = std::make_shared<bool>(false);  // set by the disconnect watch
  exchange.WatchForDisconnect([gone, channel] {
    *gone = true;
    channel->cancel();
  });

  size_t finished = 0;
  int64_t completion_tokens = 0;
  bool streaming = false;
  while (finished < total && !client_gone && !*gone) {
    auto [ec, event] = co_await channel->async_receive(net::as_tuple(net::use_awaitable));
    if (ec) break;
    if (parsed.stream && !streaming) {
      if (event.finish == engine::FinishReason::kError) {
        for (uint64_t engine_id : ids) s.engine->Cancel(engine_id);
        channel->close();
        const int status = StatusFor(event.error);
        std::string message(event.error.message());
        co_await SendError(exchange, status, ErrorTypeFor(status), message, std::nullopt,
                           std::nullopt, RetryAfterFor(status));
        co_return;
      }
      streaming = true;
      client_gone = !co_await exchange.StartStream(200, "text/event-stream");
      if (client_gone) break;
    }
    const size_t index = first_choice[event.request_id] + static_cast<size_t>(event.index);
    Choice& c = choices[index];
    const auto now = Clock::now();
    if (event.prompt_tokens > 0) s.metrics->queue->Observe(event.queue_seconds);
    if (!event.token_ids.empty()) {
      s.NoteToken();
      if (c.tokens.empty()) {
        s.metrics->ObserveTtft(std::chrono::duration<double>(now - start).count());
      } else {
        s.metrics->ObserveItl(std::chrono::duration<double>(now - c.last_token).count());
      }
      c.last_token = now;
    }
    const size_t first_new_lp = c.logprobs.size();
    const int32_t prev = c.tokens.empty() ? parsed.prompts[index / n].back() : c.tokens.back();
    const int64_t text_offset = static_cast<int64_t>(c.text.size());
    c.tokens.insert(c.tokens.end(), event.token_ids.begin(), event.token_ids.end());
    c.logprobs.insert(c.logprobs.end(), event.logprobs.begin(), event.logprobs.end());
    c.text += event.text;
    completion_tokens += static_cast<int64_t>(event.token_ids.size());
    if (event.finish != engine::FinishReason::kNone) {
      c.finish = event.finish;
      c.error = event.error;
      ++finished;
    }
    if (!parsed.stream) continue;
    if (event.finish == engine::FinishReason::kError) {
      json::object error;
      error["message"] = std::string(event.error.message());
      error["type"] = "service_unavailable_error";
      error["param"] = nullptr;
      error["code"] = nullptr;
      json::object wrapper;
      wrapper["error"] = std::move(error);
      std::string data = absl::StrCat("data: ", json::serialize(wrapper), "\n\n");
      client_gone = !co_await exchange.WriteChunk(std::move(data));
      continue;
    }
    const std::vector<int32_t> new_tokens(event.token_ids);
    const std::vector<TokenLogprobs> new_lps(c.logprobs.begin() + first_new_lp, c.logprobs.end());
    json::array out;
    if (api == Api::kChat) {
      if (!c.started) {
        c.started = true;
        json::object role;
        role["role"] = "assistant";
        role["content"] = "";
        json::object opening;
        opening["index"] = index;
        opening["delta"] = std::move(role);
        opening["logprobs"] = nullptr;
        opening["finish_reason"] = nullptr;
        json::array first;
        first.push_back(std::move(opening));
        std::string data = chunk(std::move(first));
        if (!co_await exchange.WriteChunk(std::move(data))) client_gone = true;
      }
      json::object delta;
      if (!event.text.empty()) delta["content"] = event.text;
      json::object choice{{"index", index}, {"delta", std::move(delta)},
                          {"logprobs", parsed.logprobs ? ChatLogprobs(tok, prev, new_tokens, new_lps)
                                                       : json::value(nullptr)},
                          {"finish_reason", event.finish == engine::FinishReason::kNone
                                                ? json::value(nullptr)
                                                : json::value(FinishName(event.finish))}};
      if (parsed.return_token_ids) choice["token_ids"] = TokenIds(new_tokens);
      out.push_back(std::move(choice));
    } else {
      json::object choice{{"index", index}, {"text", event.text},
                          {"logprobs", parsed.logprobs
                                           ? CompletionLogprobs(tok, prev, new_tokens, new_lps,
                                                                text_offset)
                                           : json::value(nullptr)},
                          {"finish_reason", event.finish == engine::FinishReason::kNone
                                                ? json::value(nullptr)
                                                : json::value(FinishName(event.finish))}};
      if (parsed.return_token_ids) choice["token_ids"] = TokenIds(new_tokens);
      out.push_back(std::move(choice));
    }
    std::string data = chunk(std::move(out));
    if (!client_gone && !co_await exchange.WriteChunk(std::move(data))) client_gone = true;
  }
  if (client_gone || *gone) {
    for (uint64_t engine_id : ids) s.engine->Cancel(engine_id);
    channel->close();
    co_return;
  }
  s.metrics->ObserveE2e(std::chrono::duration<double>(Clock::now() - start).count());
  s.NoteUsage(exchange, prompt_tokens, completion_tokens);
  const json::object usage{{"prompt_tokens", prompt_tokens},
                           {"completion_tokens", completion_tokens},
                           {"total_tokens", prompt_tokens + completion_tokens}};
  if (parsed.stream) {
    if (parsed.include_usage) {
      json::object last;
      last["id"] = id;
      last["object"] = object;
      last["created"] = created;
      last["model"] = s.options.model_name;
      last["choices"] = json::array();
      last["usage"] = usage;
      std::string data = absl::StrCat("data: ", json::serialize(last), "\n\n");
      co_await exchange.WriteChunk(std::move(data));
    }
    std::string done = "data: [DONE]\n\n";
    co_await exchange.WriteChunk(std::move(done));
    co_await exchange.EndStream();
    co_return;
  }
  for (const Choice& c : choices) {
    if (c.finish == engine::FinishReason::kError) {
      const int status = StatusFor(c.error);
      std::string message(c.error.message());
      co_await SendError(exchange, status, ErrorTypeFor(status), message, std::nullopt,
                         std::nullopt, RetryAfterFor(status));
      co_return;
    }
  }
  json::array out;
  for (size_t i = 0; i < choices.size(); ++i) {
    const Choice& c = choices[i];
    json::object choice;
    if (api == Api::kChat) {
      choice = json::object{
          {"index", i},
          {"message", json::object{{"role", "assistant"}, {"content", c.text}}},
          {"logprobs", parsed.logprobs
                           ? ChatLogprobs(tok, parsed.prompts[i / n].back(), c.tokens, c.logprobs)
                           : json::value(nullptr)},
          {"finish_reason", FinishName(c.finish)}};
    } else {
      choice = json::object{
          {"index", i}, {"text", c.text},
          {"logprobs", parsed.logprobs ? CompletionLogprobs(tok, parsed.prompts[i / n].back(),
                                                            c.tokens, c.logprobs, 0)
                                       : json::value(nullptr)},
          {"finish_reason", FinishName(c.finish)}};
    }
    if (parsed.return_token_ids) {
      choice["prompt_token_ids"] = TokenIds(parsed.prompts[i / n]);
      choice["token_ids"] = TokenIds(c.tokens);
    }
    out.push_back(std::move(choice));
  }
  json::object response;
  response["id"] = id;
  response["object"] = object;
  response["created"] = created;
  response["model"] = s.options.model_name;
  response["choices"] = std::move(out);
  response["usage"] = usage;
  co_await SendJson(exchange, 200, response);
}

// Parses the body as a JSON object and checks "model"; sends the error itself on failure.
net::awaitable<std::optional<json::object>> ReadBody(Gateway::State& s, HttpExchange& exchange) {
  boost::system::error_code ec;
  json::value body = json::parse(exchange.request().body(), ec);
  if (ec || !body.is_object()) {
    std::string message = "the body must be a JSON object";
    if (ec) message = absl::StrCat("the body is not valid JSON: ", ec.message());
    co_await SendError(exchange, 400, "invalid_request_error", message);
    co_return std::nullopt;
  }
  const json::value* model = body.as_object().if_contains("model");
  if (model == nullptr || !model->is_string()) {
    std::optional<std::string> param = "model";
    co_await SendError(exchange, 400, "invalid_request_error", "'model' is required",
                       std::move(param));
    co_return std::nullopt;
  }
  if (model->as_string() != s.options.model_name) {
    std::string message = absl::StrCat("The model '", std::string(model->as_string()),
                                       "' does not exist; this server serves '",
                                       s.options.model_name, "'");
    std::optional<std::string> param = "model", code = "model_not_found";
    co_await SendError(exchange, 404, "invalid_request_error", message, std::move(param),
                       std::move(code));
    co_return std::nullopt;
  }
  co_return std::move(body.as_object());
}

}  // namespace

net::awaitable<void> HandleCompletions(Gateway::State& s, HttpExchange& exchange) {
  std::optional<json::object> body = co_await ReadBody(s, exchange);
  if (!body) co_return;
  Parsed parsed;
  std::optional<BadRequest> bad = ParseCommon(*body, Api::kCompletions, parsed);
  if (!bad) bad = ParsePrompts(*body, s, parsed);
  if (bad) {
    co_await SendBadRequest(exchange, *bad);
    co_return;
  }
  co_await Generate(s, exchange, Api::kCompletions, std::move(parsed));
}

net::awaitable<void> HandleChatCompletions(Gateway::State& s, HttpExchange& exchange) {
  std::optional<json::object> body = co_await ReadBody(s, exchange);
  if (!body) co_return;
  Parsed parsed;
  json::array messages;
  std::optional<BadRequest> bad = ParseCommon(*body, Api::kChat, parsed);
  if (!bad) bad = NormalizeMessages(body->if_contains("messages"), messages);
  if (bad) {
    co_await SendBadRequest(exchange, *bad);
    co_return;
  }
  if (s.templates == nullptr || !s.templates->Get()) {
    std::optional<std::string> param = "messages";
    co_await SendError(exchange, 400, "invalid_request_error",
                       "this model has no chat template: use /v1/completions", std::move(param));
    co_return;
  }
  const json::value* tools = body->if_contains("tools");
  auto prompt = s.EncodeChatPrompt(
      messages, tools != nullptr && tools->is_array() ? &tools->as_array() : nullptr);
  if (!prompt.ok()) {
    co_await SendBadRequest(exchange, PromptProblem(prompt.status(), "messages"));
    co_return;
  }
  parsed.prompts.push_back(std::move(prompt->ids));
  co_await Generate(s, exchange, Api::kChat, std::move(parsed));
}

// vLLM's /tokenize: {"model", "prompt" | "messages", "add_special_tokens"} -> {"tokens",
// "count", "max_model_len"}; messages are rendered exactly as a chat request's.
net::awaitable<void> HandleTokenize(Gateway::State& s, HttpExchange& exchange) {
  std::optional<json::object> body = co_await ReadBody(s, exchange);
  if (!body) co_return;
  std::vector<int32_t> ids;
  std::string problem;
  const json::value* prompt = body->if_contains("prompt");
  const json::value* messages = body->if_contains("messages");
  bool add_special = true;
  if (const json::value* v = body->if_contains("add_special_tokens"); v != nullptr && v->is_bool()) {
    add_special = v->as_bool();
  }
  if (prompt != nullptr && prompt->is_string() && s.max_prompt_bytes > 0 &&
      prompt->as_string().size() > s.max_prompt_bytes) {
    // As vLLM: a prompt longer than the context is refused; here before it is encoded.
    problem = absl::StrCat("This model's maximum context length is ", s.engine->max_model_len(),
                           " tokens; the prompt is ", prompt->as_string().size(),
                           " bytes, more than that many tokens can hold");
  } else if (prompt != nullptr && prompt->is_string()) {
    auto encoded = s.tokenizer->Encode(std::string_view(prompt->as_string().data(),
                                                        prompt->as_string().size()),
                                       add_special);
    if (encoded.ok()) {
      ids = *std::move(encoded);
    } else {
      problem = std::string(encoded.status().message());
    }
  } else if (messages != nullptr) {
    json::array normalized;
    if (auto bad = NormalizeMessages(messages, normalized)) {
      problem = bad->message;
    } else if (s.templates == nullptr || !s.templates->Get()) {
      problem = "this model has no chat template";
    } else {
      auto encoded = s.EncodeChatPrompt(normalized, nullptr);  // bounded as a chat request
      if (encoded.ok()) {
        ids = std::move(encoded->ids);
      } else {
        problem = std::string(encoded.status().message());
      }
    }
  } else {
    problem = "give 'prompt' (a string) or 'messages'";
  }
  if (!problem.empty()) {
    co_await SendError(exchange, 400, "invalid_request_error", problem);
    co_return;
  }
  json::array tokens;
  for (int32_t id : ids) tokens.push_back(id);
  json::object out;
  out["count"] = ids.size();
  out["tokens"] = std::move(tokens);
  out["max_model_len"] = s.engine->max_model_len();
  co_await SendJson(exchange, 200, out);
}

// vLLM's /detokenize: {"model", "tokens"} -> {"prompt"}.
net::awaitable<void> HandleDetokenize(Gateway::State& s, HttpExchange& exchange) {
  std::optional<json::object> body = co_await ReadBody(s, exchange);
  if (!body) co_return;
  const json::value* tokens = body->if_contains("tokens");
  std::vector<int32_t> ids;
  std::string problem;
  if (tokens == nullptr || !tokens->is_array()) {
    problem = "'tokens' must be a list of token ids";
  } else {
    for (const json::value& t : tokens->as_array()) {
      int32_t id = 0;
      if (auto bad = TokenId(t, "tokens", id)) {
        problem = bad->message;
        break;
      }
      ids.push_back(id);
    }
  }
  std::string text;
  if (problem.empty()) {
    auto decoded = s.tokenizer->Decode(ids, /*skip_special=*/false);
    if (decoded.ok()) {
      text = *std::move(decoded);
    } else {
      problem = std::string(decoded.status().message());
    }
  }
  if (!problem.empty()) {
    co_await SendError(exchange, 400, "invalid_request_error", problem);
    co_return;
  }
  json::object out;
  out["prompt"] = std::move(text);
  co_await SendJson(exchange, 200, out);
}

}  // namespace strata::gateway

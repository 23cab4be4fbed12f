// Ollama's API, for the clients local users already have: POST /api/generate and /api/chat
// (NDJSON streaming by default, or one JSON object with "stream": false), GET /api/tags,
// POST /api/show, GET /api/version. Errors are Ollama's {"error": "..."}.
//
// Differences from Ollama, all in the direction of its OpenAI-compatible behaviour: sampling
// defaults are temperature 0.8, top_p 0.9, top_k 40 and no repetition penalty (Ollama's
// repeat_penalty only looks at the last 64 tokens; ours applies to all, so it is off unless
// asked for); num_predict defaults to the rest of the context; /api/generate renders the prompt
// (and system) through the model's chat template unless "raw" is set or there is none.
#include <algorithm>
#include <chrono>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "boost/asio/as_tuple.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "common/byte_size.h"
#include "coordinator/chat/chat_prompt.h"
#include "coordinator/gateway/gateway_internal.h"
#include "coordinator/tokenizer/tokenizer.h"

namespace strata::gateway {
namespace {

namespace net = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

net::awaitable<void> SendOllamaError(HttpExchange& exchange, int status, std::string_view message) {
  json::object body;
  body["error"] = json::string(message);
  co_await SendJson(exchange, status, body, RetryAfterFor(status));
}

std::string Timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                          now.time_since_epoch()).count() % 1000000;
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
}

bool ModelMatches(const Gateway::State& s, const json::value* model) {
  if (model == nullptr || !model->is_string()) return false;
  const std::string name(model->as_string());
  return name == s.options.model_name || name == s.options.model_name + ":latest";
}

enum class OptionType { kNumber, kInteger, kBool, kUnknown };

// The type of each option Ollama's Options struct declares (those we do not use included: a
// client sending them in the wrong type gets the error Ollama would give).
OptionType TypeOfOption(std::string_view key) {
  static constexpr std::string_view kIntegers[] = {
      "num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "mirostat", "num_ctx",
      "num_batch", "num_gpu", "main_gpu", "num_thread"};
  static constexpr std::string_view kNumbers[] = {
      "top_p", "min_p", "typical_p", "tfs_z", "temperature", "repeat_penalty",
      "presence_penalty", "frequency_penalty", "mirostat_tau", "mirostat_eta"};
  static constexpr std::string_view kBools[] = {
      "numa", "use_mmap", "low_vram", "vocab_only", "use_mlock", "f16_kv", "penalize_newline"};
  for (std::string_view k : kIntegers) if (key == k) return OptionType::kInteger;
  for (std::string_view k : kNumbers) if (key == k) return OptionType::kNumber;
  for (std::string_view k : kBools) if (key == k) return OptionType::kBool;
  return OptionType::kUnknown;
}

// Reads Ollama's "options" into the request. Returns a problem, or empty. An option of the
// wrong type is refused, as Ollama refuses it; unknown options are ignored, as Ollama does.
std::string ParseOptions(const json::object& body, engine::GenerationRequest& r) {
  SamplingParams& p = r.sampling;
  p.temperature = 0.8f;
  p.top_p = 0.9f;
  p.top_k = 40;
  const json::value* options = body.if_contains("options");
  if (options == nullptr || options->is_null()) return "";
  if (!options->is_object()) return "options must be an object";
  for (const auto& [key, value] : options->as_object()) {
    const std::string name(key.data(), key.size());
    if (value.is_null()) continue;
    if (name == "stop") {
      if (!value.is_array()) return "options.stop must be a list of strings";
      for (const json::value& stop : value.as_array()) {
        if (!stop.is_string() || stop.as_string().empty()) return "options.stop must be a list of strings";
        r.stop.emplace_back(stop.as_string());
      }
      continue;
    }
    const OptionType type = TypeOfOption(name);
    const bool integer = value.is_int64() || value.is_uint64();
    if (type == OptionType::kUnknown) continue;
    if (type == OptionType::kBool) {
      if (!value.is_bool()) return absl::StrCat("options.", name, " must be a boolean");
      continue;
    }
    if (type == OptionType::kInteger && !integer) {
      return absl::StrCat("options.", name, " must be an integer, got ", json::serialize(value));
    }
    if (!integer && !value.is_double()) {
      return absl::StrCat("options.", name, " must be a number, got ", json::serialize(value));
    }
    const double x = value.to_number<double>();
    // Integers as int64, saturating (a uint64 beyond it, or -2^63, is out of every range here).
    const int64_t n = !integer ? 0
                      : value.is_int64() ? value.as_int64()
                      : static_cast<int64_t>(std::min<uint64_t>(value.as_uint64(), INT64_MAX));
    if (name == "temperature") p.temperature = static_cast<float>(x);
    if (name == "top_p") p.top_p = static_cast<float>(x);
    if (name == "top_k") p.top_k = static_cast<int32_t>(std::clamp<int64_t>(n, 0, INT32_MAX));
    if (name == "min_p") p.min_p = static_cast<float>(x);
    if (name == "seed") r.seed = value.is_uint64() ? value.as_uint64() : static_cast<uint64_t>(n);
    if (name == "num_predict" && n > 0) r.max_tokens = n;  // -1, -2: until the context is full
    if (name == "repeat_penalty") p.repetition_penalty = static_cast<float>(x);
    if (name == "presence_penalty") p.presence_penalty = static_cast<float>(x);
    if (name == "frequency_penalty") p.frequency_penalty = static_cast<float>(x);
  }
  return "";
}

net::awaitable<void> Run(Gateway::State& s, HttpExchange& exchange, bool chat,
                         engine::GenerationRequest request, bool stream, json::value model) {
  const auto start = Clock::now();
  const int64_t prompt_tokens = static_cast<int64_t>(request.prompt.size());
  if (request.max_tokens <= 0) {
    request.max_tokens = std::max<int64_t>(1, s.engine->max_model_len() - prompt_tokens);
  }
  request.tenant = KeyId(exchange.request());
  auto channel = std::make_shared<EventChannel>(exchange.executor(), kEventChannelCapacity);
  auto id = s.engine->Add(std::move(request), [channel](const engine::SampleOutput& e) {
    return channel->try_send(boost::system::error_code(), e);
  });
  if (!id.ok()) {
    std::string message(id.status().message());
    co_await SendOllamaError(exchange, StatusFor(id.status()), message);
    co_return;
  }
  auto line = [&](const std::string& text, bool done) {
    json::object o;
    o["model"] = model;
    o["created_at"] = Timestamp();
    if (chat) {
      json::object message;
      message["role"] = "assistant";
      message["content"] = text;
      o["message"] = std::move(message);
    } else {
      o["response"] = text;
    }
    o["done"] = done;
    return o;
  };
  // Nothing is written before the first event (a stream starts with it, unless that event is
  // an error, answered with its status); notice a client that leaves before then.
  bool client_gone = false;
  bool streaming = false;
  auto gone = std::make_shared<bool>(false);  // set by the disconnect watch
  exchange.WatchForDisconnect([gone, channel] {
    *gone = true;
    channel->cancel();
  });
  std::string text;
  int64_t tokens = 0;
  auto first_token = start;
  engine::SampleOutput last;
  while (!client_gone && !*gone) {
    auto [ec, event] = co_await channel->async_receive(net::as_tuple(net::use_awaitable));
    if (ec) break;
    if (stream && !streaming && event.finish != engine::FinishReason::kError) {
      streaming = true;
      client_gone = !co_await exchange.StartStream(200, "application/x-ndjson");
      if (client_gone) break;
    }
    if (event.prompt_tokens > 0) s.metrics->queue->Observe(event.queue_seconds);
    if (!event.token_ids.empty()) {
      if (tokens == 0) {
        first_token = Clock::now();
        s.metrics->ObserveTtft(std::chrono::duration<double>(first_token - start).count());
      }
      s.NoteToken();
    }
    tokens += static_cast<int64_t>(event.token_ids.size());
    text += event.text;
    if (event.finish != engine::FinishReason::kNone) {
      last = std::move(event);
      break;
    }
    if (stream && !event.text.empty()) {
      std::string data = json::serialize(line(event.text, false)) + "\n";
      client_gone = !co_await exchange.WriteChunk(std::move(data));
    }
  }
  if (client_gone || *gone) {
    s.engine->Cancel(*id);
    channel->close();
    co_return;
  }
  if (last.finish == engine::FinishReason::kError) {
    std::string message(last.error.message());
    if (streaming) {
      json::object error;
      error["error"] = message;
      std::string data = json::serialize(error) + "\n";
      co_await exchange.WriteChunk(std::move(data));
      co_await exchange.EndStream();
    } else {
      co_await SendOllamaError(exchange, StatusFor(last.error), message);
    }
    co_return;
  }
  const auto end = Clock::now();
  auto ns = [](auto d) { return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(); };
  s.metrics->ObserveE2e(std::chrono::duration<double>(end - start).count());
  s.NoteUsage(exchange, prompt_tokens, tokens);
  // Streaming: the last event's text rides on the final line.
  json::object final_line = line(stream ? last.text : text, true);
  final_line["done_reason"] = last.finish == engine::FinishReason::kLength ? "length" : "stop";
  final_line["total_duration"] = ns(end - start);
  final_line["load_duration"] = 0;
  final_line["prompt_eval_count"] = prompt_tokens;
  final_line["prompt_eval_duration"] = ns(first_token - start);
  final_line["eval_count"] = tokens;
  final_line["eval_duration"] = ns(end - first_token);
  if (stream) {
    std::string data = json::serialize(final_line) + "\n";
    co_await exchange.WriteChunk(std::move(data));
    co_await exchange.EndStream();
  } else {
    co_await SendJson(exchange, 200, final_line);
  }
}

net::awaitable<std::optional<json::object>> ReadOllamaBody(Gateway::State& s, HttpExchange& exchange) {
  boost::system::error_code ec;
  json::value body = json::parse(exchange.request().body(), ec);
  if (ec || !body.is_object()) {
    co_await SendOllamaError(exchange, 400, "invalid JSON body");
    co_return std::nullopt;
  }
  const json::value* model = body.as_object().if_contains("model");
  if (model == nullptr) model = body.as_object().if_contains("name");
  if (!ModelMatches(s, model)) {
    std::string message = absl::StrCat(
        "model '", model != nullptr && model->is_string() ? std::string(model->as_string()) : "",
        "' not found");
    co_await SendOllamaError(exchange, 404, message);
    co_return std::nullopt;
  }
  co_return std::move(body.as_object());
}

}  // namespace

net::awaitable<void> HandleOllamaGenerate(Gateway::State& s, HttpExchange& exchange) {
  std::optional<json::object> body = co_await ReadOllamaBody(s, exchange);
  if (!body) co_return;
  const json::value model = body->contains("model") ? body->at("model") : body->at("name");
  const json::value* prompt = body->if_contains("prompt");
  if (prompt != nullptr && !prompt->is_string()) {
    co_await SendOllamaError(exchange, 400, "prompt must be a string");
    co_return;
  }
  const std::string text = prompt != nullptr ? std::string(prompt->as_string()) : std::string();
  if (text.empty()) {  // Ollama's "load the model" request
    json::object o;
    o["model"] = model;
    o["created_at"] = Timestamp();
    o["response"] = "";
    o["done"] = true;
    o["done_reason"] = "load";
    co_await SendJson(exchange, 200, o);
    co_return;
  }
  engine::GenerationRequest request;
  request.max_tokens = 0;
  if (std::string problem = ParseOptions(*body, request); !problem.empty()) {
    co_await SendOllamaError(exchange, 400, problem);
    co_return;
  }
  const json::value* raw = body->if_contains("raw");
  const bool templated = !(raw != nullptr && raw->is_bool() && raw->as_bool()) &&
                         s.templates != nullptr && s.templates->Get();
  if (templated) {
    json::array messages;
    if (const json::value* system = body->if_contains("system"); system != nullptr && system->is_string()) {
      messages.push_back(json::object{{"role", "system"}, {"content", system->as_string()}});
    }
    messages.push_back(json::object{{"role", "user"}, {"content", text}});
    auto encoded = s.EncodeChatPrompt(messages, nullptr);
    if (!encoded.ok()) {
      {
      std::string message(encoded.status().message());
      co_await SendOllamaError(exchange, 400, message);
    }
      co_return;
    }
    request.prompt = std::move(encoded->ids);
  } else {
    auto ids = s.EncodePrompt(text);
    if (!ids.ok()) {
      {
      std::string message(ids.status().message());
      co_await SendOllamaError(exchange, 400, message);
    }
      co_return;
    }
    request.prompt = *std::move(ids);
  }
  const json::value* stream = body->if_contains("stream");
  co_await Run(s, exchange, /*chat=*/false, std::move(request),
               stream == nullptr || !stream->is_bool() || stream->as_bool(), model);
}

net::awaitable<void> HandleOllamaChat(Gateway::State& s, HttpExchange& exchange) {
  std::optional<json::object> body = co_await ReadOllamaBody(s, exchange);
  if (!body) co_return;
  const json::value model = body->contains("model") ? body->at("model") : body->at("name");
  const json::value* messages = body->if_contains("messages");
  if (messages == nullptr || !messages->is_array() || messages->as_array().empty()) {
    co_await SendOllamaError(exchange, 400, "messages must be a non-empty list");
    co_return;
  }
  for (const json::value& m : messages->as_array()) {
    if (!m.is_object() || !m.as_object().contains("role") || !m.as_object().at("role").is_string()) {
      co_await SendOllamaError(exchange, 400, "each message needs a string role");
      co_return;
    }
  }
  if (s.templates == nullptr || !s.templates->Get()) {
    co_await SendOllamaError(exchange, 400, "this model has no chat template");
    co_return;
  }
  engine::GenerationRequest request;
  request.max_tokens = 0;
  if (std::string problem = ParseOptions(*body, request); !problem.empty()) {
    co_await SendOllamaError(exchange, 400, problem);
    co_return;
  }
  auto encoded = s.EncodeChatPrompt(messages->as_array(), nullptr);
  if (!encoded.ok()) {
    {
      std::string message(encoded.status().message());
      co_await SendOllamaError(exchange, 400, message);
    }
    co_return;
  }
  request.prompt = std::move(encoded->ids);
  const json::value* stream = body->if_contains("stream");
  co_await Run(s, exchange, /*chat=*/true, std::move(request),
               stream == nullptr || !stream->is_bool() || stream->as_bool(), model);
}

namespace {

json::object Details(const Gateway::State& s) {
  const ModelConfig& c = s.engine->config();
  json::object d;
  d["format"] = s.engine->config().torch_dtype.empty() ? "safetensors" : "gguf";
  d["family"] = c.model_type.empty() ? "llama" : c.model_type;
  d["families"] = json::array{json::value(c.model_type.empty() ? "llama" : c.model_type)};
  d["parameter_size"] = FormatBytes(s.engine->weight_bytes());
  d["quantization_level"] = c.torch_dtype.empty() ? "unknown" : c.torch_dtype;
  return d;
}

}  // namespace

net::awaitable<void> HandleOllamaTags(Gateway::State& s, HttpExchange& exchange) {
  json::object model;
  model["name"] = s.options.model_name;
  model["model"] = s.options.model_name;
  model["modified_at"] = Timestamp();
  model["size"] = s.engine->weight_bytes();
  model["digest"] = "";
  model["details"] = Details(s);
  json::object body;
  body["models"] = json::array{std::move(model)};
  co_await SendJson(exchange, 200, body);
}

net::awaitable<void> HandleOllamaShow(Gateway::State& s, HttpExchange& exchange) {
  std::optional<json::object> body = co_await ReadOllamaBody(s, exchange);
  if (!body) co_return;
  const ModelConfig& c = s.engine->config();
  json::object info;
  info["general.architecture"] = c.model_type.empty() ? "llama" : c.model_type;
  info["general.parameter_count"] = s.engine->weight_bytes() / std::max<int64_t>(1, c.ParamBytes());
  info["llama.context_length"] = c.max_position_embeddings;
  info["llama.embedding_length"] = c.hidden_size;
  info["llama.block_count"] = c.num_layers;
  info["llama.attention.head_count"] = c.num_heads;
  info["llama.attention.head_count_kv"] = c.num_kv_heads;
  json::object out;
  out["modelfile"] = "";
  out["parameters"] = "";
  out["template"] = s.templates != nullptr && s.templates->Get() ? *s.templates->Get() : "";
  out["details"] = Details(s);
  out["model_info"] = std::move(info);
  out["capabilities"] = json::array{json::value("completion")};
  co_await SendJson(exchange, 200, out);
}

net::awaitable<void> HandleOllamaVersion(Gateway::State&, HttpExchange& exchange) {
  json::object body;
  body["version"] = "0.6.0";  // the Ollama API level Strata speaks
  co_await SendJson(exchange, 200, body);
}

}  // namespace strata::gateway

// `strata bench serve`: a load generator against a running OpenAI-compatible server (Strata,
// or a peer such as vLLM). For each concurrency level it keeps that many streaming
// /v1/completions requests in flight until the level's requests are done, and reports
// throughput, time to first token, inter-token latency and end-to-end latency percentiles.
//
// Prompts are token-id lists (exact lengths, ids in [3, 300) so any vocabulary takes them) and
// outputs use ignore_eos, so each request produces exactly its drawn output length. Lengths
// come from distributions: fixed:N, uniform:A:B, normal:MEAN:STD (clamped to >= 1).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "boost/asio/as_tuple.hpp"
#include "boost/asio/co_spawn.hpp"
#include "boost/asio/connect.hpp"
#include "boost/asio/detached.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/core/tcp_stream.hpp"
#include "boost/beast/http.hpp"
#include "boost/json.hpp"
#include "coordinator/cli/commands.h"

namespace strata::cli {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = net::as_tuple(net::use_awaitable);

struct Distribution {
  enum Kind { kFixed, kUniform, kNormal } kind = kFixed;
  double a = 0, b = 0;

  int64_t Draw(std::mt19937_64& random) const {
    double x = a;
    if (kind == kUniform) x = std::uniform_real_distribution<double>(a, b + 1)(random);
    if (kind == kNormal) x = std::normal_distribution<double>(a, b)(random);
    return std::max<int64_t>(1, static_cast<int64_t>(x));
  }
};

absl::StatusOr<Distribution> ParseDistribution(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  Distribution d;
  auto num = [&](size_t i, double& out) { return i < parts.size() && absl::SimpleAtod(parts[i], &out); };
  if (parts[0] == "fixed" && parts.size() == 2 && num(1, d.a)) return d;
  if (parts[0] == "uniform" && parts.size() == 3 && num(1, d.a) && num(2, d.b) && d.a <= d.b) {
    d.kind = Distribution::kUniform;
    return d;
  }
  if (parts[0] == "normal" && parts.size() == 3 && num(1, d.a) && num(2, d.b)) {
    d.kind = Distribution::kNormal;
    return d;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "'", text, "' is not a length distribution (fixed:N, uniform:A:B or normal:MEAN:STD)"));
}

struct BenchServeFlags {
  std::string url = "http://127.0.0.1:8000";
  std::string model;
  std::string api_key;
  std::string concurrency = "1,8,32";
  int requests = 0;  // per level; 0 = 4 x concurrency, at least 16
  std::string prompt_len = "uniform:64:256";
  std::string output_len = "uniform:32:128";
  uint64_t seed = 1;
  double duration = 0;  // seconds per level; 0 = run the level's requests once
};

struct Sample {
  double ttft = 0, e2e = 0;
  std::vector<double> itl;
  int64_t tokens = 0;
  bool ok = false;
  std::string error;
};

struct Target {
  std::string host, port;
  std::string model, api_key;
};

Sample Failed(std::string error) {
  Sample s;
  s.error = std::move(error);
  return s;
}

net::awaitable<Sample> OneRequest(const Target& t, const std::vector<int32_t>& prompt,
                                  int64_t max_tokens) {
  Sample s;
  auto executor = co_await net::this_coro::executor;
  net::ip::tcp::resolver resolver(executor);
  beast::tcp_stream stream(executor);
  auto [rec, endpoints] = co_await resolver.async_resolve(t.host, t.port, kTuple);
  if (rec) co_return Failed(rec.message());
  auto [cec, ep] = co_await stream.async_connect(endpoints, kTuple);
  if (cec) co_return Failed(cec.message());
  json::array ids;
  for (int32_t id : prompt) ids.push_back(id);
  json::object body;
  body["model"] = t.model;
  body["prompt"] = std::move(ids);
  body["max_tokens"] = max_tokens;
  body["temperature"] = 0;
  body["ignore_eos"] = true;
  body["stream"] = true;
  http::request<http::string_body> req{http::verb::post, "/v1/completions", 11};
  req.set(http::field::host, t.host);
  req.set(http::field::content_type, "application/json");
  if (!t.api_key.empty()) req.set(http::field::authorization, "Bearer " + t.api_key);
  req.body() = json::serialize(body);
  req.prepare_payload();
  const auto start = Clock::now();
  auto [wec, wn] = co_await http::async_write(stream, req, kTuple);
  if (wec) co_return Failed(wec.message());

  http::response_parser<http::empty_body> parser;
  parser.body_limit(boost::none);
  std::string pending;
  auto last = start;
  auto on_chunk = [&](uint64_t, beast::string_view data, beast::error_code&) {
    pending.append(data.data(), data.size());
    size_t end;
    while ((end = pending.find("\n\n")) != std::string::npos) {
      const std::string event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (!event.starts_with("data: ") || event == "data: [DONE]") continue;
      boost::system::error_code ec;
      const json::value v = json::parse(event.substr(6), ec);
      if (ec || !v.is_object()) continue;
      if (v.as_object().contains("error")) {
        s.error = json::serialize(v);
        continue;
      }
      const json::value* choices = v.as_object().if_contains("choices");
      if (choices == nullptr || !choices->is_array() || choices->as_array().empty()) continue;
      const auto now = Clock::now();
      if (s.tokens == 0) {
        s.ttft = std::chrono::duration<double>(now - start).count();
      } else {
        s.itl.push_back(std::chrono::duration<double>(now - last).count());
      }
      last = now;
      ++s.tokens;
    }
    return data.size();
  };
  parser.on_chunk_body(on_chunk);
  beast::flat_buffer buffer;
  auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, kTuple);
  if (hec) co_return Failed(hec.message());
  if (parser.get().result_int() != 200) {
    co_return Failed(absl::StrCat("HTTP ", parser.get().result_int()));
  }
  while (!parser.is_done()) {
    auto [ec, n] = co_await http::async_read_some(stream, buffer, parser, kTuple);
    if (ec) co_return Failed(ec.message());
  }
  s.e2e = std::chrono::duration<double>(Clock::now() - start).count();
  s.ok = s.error.empty() && s.tokens == max_tokens;
  if (s.error.empty() && !s.ok) s.error = absl::StrCat("got ", s.tokens, " of ", max_tokens, " tokens");
  beast::error_code ignored;
  stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
  co_return s;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// The model id the server offers first (GET /v1/models).
absl::StatusOr<std::string> FirstModel(const Target& t) {
  net::io_context io;
  beast::tcp_stream stream(io);
  net::ip::tcp::resolver resolver(io);
  beast::error_code ec;
  stream.connect(resolver.resolve(t.host, t.port, ec), ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot reach ", t.host, ":", t.port, ": ", ec.message()));
  http::request<http::empty_body> req{http::verb::get, "/v1/models", 11};
  req.set(http::field::host, t.host);
  if (!t.api_key.empty()) req.set(http::field::authorization, "Bearer " + t.api_key);
  http::write(stream, req, ec);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res, ec);
  if (ec || res.result_int() != 200) {
    return absl::UnavailableError(absl::StrCat("GET /v1/models failed: ", ec ? ec.message() : res.body()));
  }
  const json::value v = json::parse(res.body(), ec);
  if (ec || !v.is_object() || !v.as_object().contains("data") || v.at("data").as_array().empty()) {
    return absl::UnavailableError("GET /v1/models returned no model");
  }
  return std::string(v.at("data").as_array()[0].at("id").as_string());
}

void RunBenchServe(const BenchServeFlags& f) {
  Target t;
  std::string rest = f.url;
  if (rest.starts_with("http://")) rest = rest.substr(7);
  if (rest.ends_with("/")) rest.pop_back();
  const size_t colon = rest.rfind(':');
  t.host = colon == std::string::npos ? rest : rest.substr(0, colon);
  t.port = colon == std::string::npos ? "80" : rest.substr(colon + 1);
  t.api_key = f.api_key;
  t.model = f.model;
  if (t.model.empty()) {
    auto model = FirstModel(t);
    ExitIfError(model.status());
    t.model = *model;
  }
  auto prompt_len = ParseDistribution(f.prompt_len);
  ExitIfError(prompt_len.status());
  auto output_len = ParseDistribution(f.output_len);
  ExitIfError(output_len.status());
  std::vector<int> levels;
  for (absl::string_view part : absl::StrSplit(f.concurrency, ',')) {
    int c = 0;
    if (!absl::SimpleAtoi(part, &c) || c < 1) ExitIfError(absl::InvalidArgumentError("--concurrency: a list of positive integers"));
    levels.push_back(c);
  }
  std::printf("bench serve: %s, model %s, prompt %s, output %s\n", f.url.c_str(), t.model.c_str(),
              f.prompt_len.c_str(), f.output_len.c_str());
  std::printf("%-6s %-9s %-8s %-7s %-10s %-26s %-26s %-10s\n", "conc", "requests", "errors", "req/s",
              "out tok/s", "TTFT p50/p90/p99 (ms)", "ITL p50/p90/p99 (ms)", "E2E p50 (s)");
  double base_rate = 0;
  for (int c : levels) {
    const int n = f.requests > 0 ? f.requests : std::max(16, 4 * c);
    std::mt19937_64 random(f.seed);
    std::vector<std::vector<int32_t>> prompts(n);
    std::vector<int64_t> outputs(n);
    for (int i = 0; i < n; ++i) {
      prompts[i].resize(prompt_len->Draw(random));
      for (int32_t& id : prompts[i]) id = 3 + static_cast<int32_t>(random() % 297);
      outputs[i] = output_len->Draw(random);
    }
    net::io_context io;
    std::vector<Sample> samples(f.duration > 0 ? 0 : n);
    int next = 0;
    const auto start = Clock::now();
    const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(f.duration));
    for (int w = 0; w < c; ++w) {
      net::co_spawn(io, [&]() -> net::awaitable<void> {
        // With --duration: keep going (cycling through the drawn requests) until it is over.
        while (f.duration > 0 ? Clock::now() < deadline : next < n) {
          const int i = next++;
          Sample s = co_await OneRequest(t, prompts[i % n], outputs[i % n]);
          if (f.duration > 0) {
            samples.push_back(std::move(s));
          } else {
            samples[i] = std::move(s);
          }
        }
      }, net::detached);
    }
    io.run();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::vector<double> ttft, itl, e2e;
    int64_t tokens = 0;
    int errors = 0;
    std::string first_error;
    for (const Sample& s : samples) {
      if (!s.ok) {
        ++errors;
        if (first_error.empty()) first_error = s.error;
        continue;
      }
      ttft.push_back(s.ttft * 1e3);
      itl.insert(itl.end(), s.itl.begin(), s.itl.end());
      e2e.push_back(s.e2e);
      tokens += s.tokens;
    }
    for (double& x : itl) x *= 1e3;
    const double rate = static_cast<double>(tokens) / seconds;
    if (base_rate == 0) base_rate = rate;
    const int done = static_cast<int>(samples.size());
    std::printf("%-6d %-9d %-8d %-7.2f %-10.1f %-26s %-26s %-10.2f x%.2f\n", c, done, errors,
                static_cast<double>(done - errors) / seconds, rate,
                absl::StrFormat("%.0f / %.0f / %.0f", Percentile(ttft, 0.5), Percentile(ttft, 0.9), Percentile(ttft, 0.99)).c_str(),
                absl::StrFormat("%.1f / %.1f / %.1f", Percentile(itl, 0.5), Percentile(itl, 0.9), Percentile(itl, 0.99)).c_str(),
                Percentile(e2e, 0.5), rate / base_rate);
    if (!first_error.empty()) std::printf("  first error: %s\n", first_error.c_str());
  }
  std::printf("(x: output tokens/s relative to the first concurrency level)\n");
}

}  // namespace

void AddBenchServeCommand(CLI::App& bench) {
  auto flags = std::make_shared<BenchServeFlags>();
  CLI::App* cmd = bench.add_subcommand(
      "serve", "Load a running OpenAI-compatible server: throughput, TTFT, inter-token latency");
  cmd->add_option("--url", flags->url, "The server")->envname("STRATA_BENCH_URL")->capture_default_str();
  cmd->add_option("--model", flags->model, "Model id (default: the server's first)");
  cmd->add_option("--api-key", flags->api_key, "Bearer key")->envname("STRATA_API_KEY");
  cmd->add_option("--concurrency", flags->concurrency, "Comma-separated concurrency levels")
      ->capture_default_str();
  cmd->add_option("--requests", flags->requests, "Requests per level (default: 4 x concurrency, >= 16)");
  cmd->add_option("--prompt-len", flags->prompt_len, "Prompt length distribution")->capture_default_str();
  cmd->add_option("--output-len", flags->output_len, "Output length distribution")->capture_default_str();
  cmd->add_option("--seed", flags->seed, "Seed of the length and prompt draws")->capture_default_str();
  cmd->add_option("--duration", flags->duration,
                  "Seconds per level: keep every client busy this long (0: each request once)")
      ->capture_default_str();
  cmd->callback([flags] { RunBenchServe(*flags); });
}

}  // namespace strata::cli

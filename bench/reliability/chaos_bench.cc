// strata_chaos_bench: runs `strata serve` (replicas x TP x PP local workers, the embedded
// model) under continuous streaming load and injects a fault every --fault-every-s seconds,
// alternating a worker killed with SIGKILL and a worker stopped with SIGSTOP past the step
// timeout, then continued. Every answer is checked against the same request's undisturbed
// tokens (greedy and seeded requests are deterministic). Every 10 s it samples the serving
// process's resident memory (all of it, and the anonymous part: heap and stacks, where a leak
// shows; the rest is code and libraries paged in as new paths run) and open descriptors; at
// the end, with the load stopped, the KV cache must be empty.
//
//   strata_chaos_bench --duration-s 1800 --fault-every-s 180 --clients 8   # the soak
//   strata_chaos_bench --duration-s 300 --fault-every-s 20 --clients 24    # chaos
//
// Prints one line per sample and a summary; exits 1 if an answer was wrong or hung, anonymous
// memory drifted more than 5 % after warm-up (once both kinds of fault have happened),
// descriptors grew, or KV blocks leaked.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "tests/integration/completion_streams.h"
#include "tests/testing/http_client.h"
#include "tests/testing/serve_process.h"

namespace strata {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct Flags {
  int duration_s = 300;
  int fault_every_s = 20;
  int clients = 16;
  int replicas = 2, tp = 2, pp = 1;
  int requests = 64;  // distinct requests the clients cycle through
  int step_timeout_ms = 2000;
};

json::object Request(int i, bool stream) {
  json::object r = testing::GreedyRequest(i % 12, 8 + (i * 37) % 153, stream);
  r["prompt"].as_array().push_back(1 + i % 300);
  if (i % 2 == 1) {
    r["temperature"] = 0.8;
    r["seed"] = 1000 + i;
  }
  return r;
}

int64_t Status(pid_t pid, const std::string& key) {  // a /proc/PID/status field in kB
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(key)) return std::atoll(line.c_str() + key.size());
  }
  return -1;
}

int64_t OpenFds(pid_t pid) {
  std::error_code ec;
  int64_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

double Metric(const std::string& metrics, const std::string& name) {
  const size_t at = metrics.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(metrics.substr(at + name.size() + 2));
}

int Run(const Flags& f) {
  auto started = testing::ServeProcess::Start(
      {"--replicas", std::to_string(f.replicas), "--tp", std::to_string(f.tp), "--pp",
       std::to_string(f.pp), "--threads", "1", "--served-model-name", "m", "--step-timeout-ms",
       std::to_string(f.step_timeout_ms), "--max-queue-ms", "120000", "--worker-restarts",
       "1000"},
      seconds(120));
  if (!started.ok()) {
    std::fprintf(stderr, "%s\n", started.status().ToString().c_str());
    return 1;
  }
  testing::ServeProcess& serve = **started;
  const int port = serve.port();

  std::vector<std::vector<int32_t>> expected(f.requests);
  for (int i = 0; i < f.requests; ++i) {
    const testing::HttpResponse r =
        testing::HttpPost(port, "/v1/completions", json::serialize(Request(i, false)));
    if (r.status != 200) {
      std::fprintf(stderr, "reference request %d: %d %s\n", i, r.status, r.body.c_str());
      return 1;
    }
    const json::value body = json::parse(r.body);
    for (const json::value& id : body.at("choices").at(0).at("token_ids").as_array()) {
      expected[i].push_back(static_cast<int32_t>(id.to_number<int64_t>()));
    }
  }

  std::atomic<bool> stop{false};
  std::atomic<int64_t> exact{0}, errors{0}, wrong{0}, hung{0}, tokens{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < f.clients; ++c) {
    clients.emplace_back([&, c] {
      for (int k = c; !stop; k += f.clients) {
        const int i = k % f.requests;
        testing::RawConnection conn(port);
        if (!conn.Send(testing::Http10Post(Request(i, true)))) {
          ++errors;
          std::this_thread::sleep_for(milliseconds(100));
          continue;
        }
        bool closed = false;
        const std::string raw = conn.ReadToEnd(seconds(300), &closed);
        const testing::Streamed got = testing::ParseStream(raw);
        if (!closed) {
          ++hung;
        } else if (!got.error.empty() || !got.finished) {
          ++errors;  // explicit: an error event, or a refusal (503) while both were down
          const bool prefix = got.ids.size() <= expected[i].size() &&
                              std::equal(got.ids.begin(), got.ids.end(), expected[i].begin());
          if (!prefix) ++wrong;
        } else if (got.ids == expected[i]) {
          ++exact;
          tokens += static_cast<int64_t>(got.ids.size());
        } else {
          ++wrong;
        }
      }
    });
  }

  int64_t faults = 0;
  std::thread injector([&] {
    std::mt19937 rng(7);
    auto next = Clock::now() + seconds(f.fault_every_s);
    while (!stop) {
      std::this_thread::sleep_for(milliseconds(100));
      if (Clock::now() < next) continue;
      next = Clock::now() + seconds(f.fault_every_s);
      std::vector<pid_t> workers = serve.Workers();
      if (workers.empty()) continue;
      const pid_t victim = workers[rng() % workers.size()];
      if (faults++ % 2 == 0) {
        ::kill(victim, SIGKILL);
        std::printf("fault %lld: SIGKILL worker %d\n", static_cast<long long>(faults), victim);
      } else {
        ::kill(victim, SIGSTOP);
        std::printf("fault %lld: SIGSTOP worker %d for %d ms\n", static_cast<long long>(faults),
                    victim, f.step_timeout_ms + 1000);
        std::this_thread::sleep_for(milliseconds(f.step_timeout_ms + 1000));
        ::kill(victim, SIGCONT);
      }
      std::fflush(stdout);
    }
  });

  const auto start = Clock::now();
  const auto end = start + seconds(f.duration_s);
  int64_t rss_warm = -1, anon_warm = -1, fds_warm = -1, rss = 0, anon = 0, fds = 0;
  while (Clock::now() < end) {
    std::this_thread::sleep_for(seconds(10));
    rss = Status(serve.pid(), "VmRSS:");
    anon = Status(serve.pid(), "RssAnon:");
    fds = OpenFds(serve.pid());
    const double t = std::chrono::duration<double>(Clock::now() - start).count();
    // Warm: both kinds of fault have happened once (their paths allocated what they keep).
    const double warm = std::min(std::max(120.0, 2.0 * f.fault_every_s + 30), f.duration_s / 3.0);
    if (rss_warm < 0 && t >= warm) {
      rss_warm = rss;
      anon_warm = anon;
      fds_warm = fds;
    }
    std::printf("t=%5.0fs  exact %lld  errors %lld  wrong %lld  hung %lld  serve rss %lld kB "
                "(anon %lld kB)  fds %lld  workers %zu\n",
                t, static_cast<long long>(exact.load()), static_cast<long long>(errors.load()),
                static_cast<long long>(wrong.load()), static_cast<long long>(hung.load()),
                static_cast<long long>(rss), static_cast<long long>(anon),
                static_cast<long long>(fds), serve.Workers().size());
    std::fflush(stdout);
  }
  stop = true;
  injector.join();
  for (std::thread& t : clients) t.join();
  const double seconds_run = std::chrono::duration<double>(Clock::now() - start).count();

  // Idle: every replica ready again, nothing left in the KV cache.
  std::string metrics;
  const auto idle_deadline = Clock::now() + seconds(120);
  while (Clock::now() < idle_deadline) {
    metrics = testing::HttpGet(port, "/metrics").body;
    if (testing::HttpGet(port, "/ready").status == 200 &&
        Metric(metrics, "strata_kv_cache_usage_ratio") == 0) {
      break;
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
  rss = Status(serve.pid(), "VmRSS:");
  anon = Status(serve.pid(), "RssAnon:");
  fds = OpenFds(serve.pid());
  const double drift = rss_warm > 0 ? 100.0 * (rss - rss_warm) / rss_warm : 0;
  const double anon_drift = anon_warm > 0 ? 100.0 * (anon - anon_warm) / anon_warm : 0;
  const double kv = Metric(metrics, "strata_kv_cache_usage_ratio");
  std::printf(
      "\nsummary: %.0f s, %d clients, %d replica(s) of TP %d x PP %d, %lld faults\n"
      "  answers: %lld exact (%lld tokens), %lld explicit errors, %lld wrong, %lld hung\n"
      "  cluster failures %.0f, recoveries %.0f, requests moved between replicas %.0f\n"
      "  serve rss %lld kB after warm-up -> %lld kB at the end (%+.2f %%); anonymous %lld kB "
      "-> %lld kB (%+.2f %%); fds %lld -> %lld\n"
      "  KV cache usage when idle: %g\n",
      seconds_run, f.clients, f.replicas, f.tp, f.pp, static_cast<long long>(faults),
      static_cast<long long>(exact.load()), static_cast<long long>(tokens.load()),
      static_cast<long long>(errors.load()), static_cast<long long>(wrong.load()),
      static_cast<long long>(hung.load()), Metric(metrics, "strata_cluster_failures_total"),
      Metric(metrics, "strata_cluster_recoveries_total"),
      Metric(metrics, "strata_replica_handoffs_total"), static_cast<long long>(rss_warm),
      static_cast<long long>(rss), drift, static_cast<long long>(anon_warm),
      static_cast<long long>(anon), anon_drift, static_cast<long long>(fds_warm),
      static_cast<long long>(fds), kv);
  const bool ok = wrong == 0 && hung == 0 && anon_drift < 5.0 && fds <= fds_warm + 4 && kv == 0;
  serve.Stop();
  std::printf("%s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  strata::Flags f;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string name = argv[i];
    int value = 0;
    if (!absl::SimpleAtoi(argv[i + 1], &value) || value < 0) {
      std::fprintf(stderr, "%s: not a number: %s\n", name.c_str(), argv[i + 1]);
      return 2;
    }
    if (name == "--duration-s") f.duration_s = value;
    else if (name == "--fault-every-s") f.fault_every_s = std::max(1, value);
    else if (name == "--clients") f.clients = std::max(1, value);
    else if (name == "--replicas") f.replicas = std::max(1, value);
    else if (name == "--tp") f.tp = std::max(1, value);
    else if (name == "--pp") f.pp = std::max(1, value);
    else if (name == "--requests") f.requests = std::max(1, value);
    else if (name == "--step-timeout-ms") f.step_timeout_ms = std::max(100, value);
    else {
      std::fprintf(stderr, "unknown flag %s (see the comment at the top of chaos_bench.cc)\n",
                   name.c_str());
      return 2;
    }
  }
  return strata::Run(f);
}

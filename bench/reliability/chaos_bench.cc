// strata_chaos_bench: runs `strata serve` (replicas x TP x PP local workers, the embedded
// model) under continuous streaming load and injects a fault every --fault-every-s seconds,
// alternating a worker killed with SIGKILL and a worker stopped with SIGSTOP past the step
// timeout, then continued. Every answer is checked against the same request's undisturbed
// tokens (greedy and seeded requests are deterministic). Every 10 s it samples the serving
// process: resident memory (all of it, and the anonymous part), malloc's accounting from
// /metrics (bytes the program holds, and bytes the allocator keeps free for reuse) and open
// descriptors.
//
// Memory is judged idle against idle: once warm (both kinds of fault have happened, so their
// paths have allocated what they keep) the load pauses until nothing runs, and the footprint
// then is the baseline; at the end, with the load stopped, the same is read again and the KV
// cache must be empty.
//
//   strata_chaos_bench --duration-s 1800 --fault-every-s 180 --clients 8   # the soak
//   strata_chaos_bench --duration-s 300 --fault-every-s 20 --clients 24    # chaos
//
// --linger-s N keeps the server up at rest for N s after the summary, to attach a heap
// profiler to a process that has been through the run (e.g. heaptrack -p PID).
//
// Prints one line per sample and a summary; exits 1 if an answer was wrong or hung, resident
// memory grew 5 % or more from the idle baseline, descriptors grew, or KV blocks leaked. The
// bytes held from malloc are reported beside it: on a heap of ~2 MB they move by tens of KB
// with gRPC's adaptive read buffers, so they are a figure to read, not a threshold.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "tests/integration/completion_streams.h"
#include "tests/testing/http_client.h"
#include "tests/testing/probes.h"
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
  int linger_s = 0;  // keep the server up, at rest, this long after the summary
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

// The serving process at rest: every replica ready, nothing running or waiting.
struct Footprint {
  int64_t rss_kb = 0, anon_kb = 0, fds = 0;
  double heap_held = 0, heap_free = 0;  // malloc: bytes the program holds; kept free for reuse
  double kv_usage = 0;
};

Footprint Read(pid_t pid, const std::string& metrics) {
  return {testing::ProcStatusKb(pid, "VmRSS:"), testing::ProcStatusKb(pid, "RssAnon:"),
          testing::OpenFds(pid), testing::MetricValue(metrics, "strata_heap_allocated_bytes"),
          testing::MetricValue(metrics, "strata_heap_free_bytes"),
          testing::MetricValue(metrics, "strata_kv_cache_usage_ratio")};
}

// Waits up to two minutes for the server to be at rest, then reads its footprint.
std::optional<Footprint> AtRest(const testing::ServeProcess& serve, std::string* metrics) {
  const bool rested = testing::WaitFor([&] {
    *metrics = testing::HttpGet(serve.port(), "/metrics").body;
    return testing::HttpGet(serve.port(), "/ready").status == 200 &&
           testing::MetricValue(*metrics, "strata_num_requests_running") == 0 &&
           testing::MetricValue(*metrics, "strata_num_requests_waiting") == 0 &&
           testing::MetricValue(*metrics, "strata_kv_cache_usage_ratio") == 0;
  }, std::chrono::seconds(120));
  if (!rested) return std::nullopt;
  return Read(serve.pid(), *metrics);
}

double Percent(double now, double then) { return then > 0 ? 100.0 * (now - then) / then : 0; }

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

  std::atomic<bool> stop{false}, paused{false};
  std::atomic<int64_t> exact{0}, errors{0}, wrong{0}, hung{0}, tokens{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < f.clients; ++c) {
    clients.emplace_back([&, c] {
      for (int k = c; !stop; k += f.clients) {
        while (paused && !stop) std::this_thread::sleep_for(milliseconds(50));
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
      if (paused || Clock::now() < next) continue;
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
  // Warm: both kinds of fault have happened once.
  const double warm = std::min(std::max(120.0, 2.0 * f.fault_every_s + 30), f.duration_s / 3.0);
  std::optional<Footprint> baseline;
  std::string metrics;
  bool rested = true;
  while (Clock::now() < end && rested) {
    std::this_thread::sleep_for(seconds(10));
    const double t = std::chrono::duration<double>(Clock::now() - start).count();
    if (!baseline && t >= warm) {
      paused = true;
      baseline = AtRest(serve, &metrics);
      paused = false;
      rested = baseline.has_value();
      std::printf("baseline at rest (t=%.0fs): rss %lld kB, anon %lld kB, heap held %.0f kB, "
                  "free %.0f kB, fds %lld\n",
                  t, static_cast<long long>(baseline ? baseline->rss_kb : -1),
                  static_cast<long long>(baseline ? baseline->anon_kb : -1),
                  baseline ? baseline->heap_held / 1024 : -1,
                  baseline ? baseline->heap_free / 1024 : -1,
                  static_cast<long long>(baseline ? baseline->fds : -1));
      std::fflush(stdout);
    }
    metrics = testing::HttpGet(port, "/metrics").body;
    const Footprint now = Read(serve.pid(), metrics);
    std::printf("t=%5.0fs  exact %lld  errors %lld  wrong %lld  hung %lld  serve rss %lld kB "
                "(anon %lld kB)  heap held %.0f kB free %.0f kB  fds %lld  workers %zu\n",
                t, static_cast<long long>(exact.load()), static_cast<long long>(errors.load()),
                static_cast<long long>(wrong.load()), static_cast<long long>(hung.load()),
                static_cast<long long>(now.rss_kb), static_cast<long long>(now.anon_kb),
                now.heap_held / 1024, now.heap_free / 1024, static_cast<long long>(now.fds),
                serve.Workers().size());
    std::fflush(stdout);
  }
  stop = true;
  injector.join();
  for (std::thread& t : clients) t.join();
  const double seconds_run = std::chrono::duration<double>(Clock::now() - start).count();

  const std::optional<Footprint> last = AtRest(serve, &metrics);
  if (!baseline || !last) {
    std::printf("%s\nFAIL: the server did not come to rest within two minutes\n",
                metrics.c_str());
    serve.Stop();
    return 1;
  }
  const double rss_drift = Percent(static_cast<double>(last->rss_kb),
                                   static_cast<double>(baseline->rss_kb));
  const double heap_drift = Percent(last->heap_held, baseline->heap_held);
  std::printf(
      "\nsummary: %.0f s, %d clients, %d replica(s) of TP %d x PP %d, %lld faults\n"
      "  answers: %lld exact (%lld tokens), %lld explicit errors, %lld wrong, %lld hung\n"
      "  cluster failures %.0f, recoveries %.0f, requests moved between replicas %.0f\n"
      "  at rest, baseline -> end:\n"
      "    serve rss %lld kB -> %lld kB (%+.2f %%); anonymous %lld kB -> %lld kB (%+.2f %%)\n"
      "    heap held %.0f kB -> %.0f kB (%+.2f %%); heap kept free %.0f kB -> %.0f kB\n"
      "    fds %lld -> %lld; KV cache usage %g\n",
      seconds_run, f.clients, f.replicas, f.tp, f.pp, static_cast<long long>(faults),
      static_cast<long long>(exact.load()), static_cast<long long>(tokens.load()),
      static_cast<long long>(errors.load()), static_cast<long long>(wrong.load()),
      static_cast<long long>(hung.load()),
      testing::MetricValue(metrics, "strata_cluster_failures_total"),
      testing::MetricValue(metrics, "strata_cluster_recoveries_total"),
      testing::MetricValue(metrics, "strata_replica_handoffs_total"),
      static_cast<long long>(baseline->rss_kb), static_cast<long long>(last->rss_kb), rss_drift,
      static_cast<long long>(baseline->anon_kb), static_cast<long long>(last->anon_kb),
      Percent(static_cast<double>(last->anon_kb), static_cast<double>(baseline->anon_kb)),
      baseline->heap_held / 1024, last->heap_held / 1024, heap_drift, baseline->heap_free / 1024,
      last->heap_free / 1024, static_cast<long long>(baseline->fds),
      static_cast<long long>(last->fds), last->kv_usage);
  const bool ok = wrong == 0 && hung == 0 && rss_drift < 5.0 && last->fds <= baseline->fds + 4 &&
                  last->kv_usage == 0;
  if (f.linger_s > 0) {
    std::printf("lingering %d s at rest: serve is pid %d\n", f.linger_s, serve.pid());
    std::fflush(stdout);
    std::this_thread::sleep_for(seconds(f.linger_s));
  }
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
    else if (name == "--linger-s") f.linger_s = value;
    else {
      std::fprintf(stderr, "unknown flag %s (see the comment at the top of chaos_bench.cc)\n",
                   name.c_str());
      return 2;
    }
  }
  return strata::Run(f);
}

// The monitoring in deploy/ against the real thing: a Prometheus server (Debian's `prometheus`)
// on 127.0.0.1 scrapes a running `strata serve` under load, with deploy/prometheus's rules
// loaded, and every query of every panel of deploy/grafana's dashboard must return data
// through Prometheus' HTTP API; every rule must evaluate without error.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "boost/json.hpp"
#include "gtest/gtest.h"
#include "tests/integration/completion_streams.h"
#include "tests/testing/child_process.h"
#include "tests/testing/http_client.h"
#include "tests/testing/serve_process.h"
#include "tests/testing/shared_data.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

constexpr const char* kPrometheus = "/usr/bin/prometheus";

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A port no one listens on now (the kernel's next ephemeral one).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += absl::StrCat("%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

struct PanelQuery {
  std::string panel;
  std::string expr;  // with the dashboard's variables substituted
};

// Every target of every panel, as Grafana would send it with "All" coordinators selected.
std::vector<PanelQuery> DashboardQueries(const json::value& dashboard) {
  std::vector<PanelQuery> out;
  for (const json::value& panel : dashboard.at("panels").as_array()) {
    const json::object& p = panel.as_object();
    if (!p.contains("targets")) continue;
    for (const json::value& target : p.at("targets").as_array()) {
      const std::string expr(target.at("expr").as_string());
      out.push_back({std::string(p.at("title").as_string()),
                     absl::StrReplaceAll(expr, {{"$instance", ".*"}, {"$__rate_interval", "20s"}})});
    }
  }
  return out;
}

// Prometheus on 127.0.0.1 scraping `target_port` every second with deploy's rules.
class Prometheus {
 public:
  static std::unique_ptr<Prometheus> Start(int target_port) {
    const fs::path dir = testing::TempDir("prometheus");
    const fs::path rules = testing::SourceDir() / "deploy" / "prometheus" / "strata-rules.yml";
    std::ofstream(dir / "prometheus.yml")
        << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        << "rule_files:\n  - " << rules.string() << "\n"
        << "scrape_configs:\n  - job_name: strata\n    static_configs:\n"
        << "      - targets: ['127.0.0.1:" << target_port << "']\n";
    // The port is free when chosen; another process could take it before Prometheus binds,
    // so a start that fails is retried on another.
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto p = std::unique_ptr<Prometheus>(new Prometheus());
      p->port_ = FreePort();
      auto process = testing::ChildProcess::Spawn(
          {kPrometheus, absl::StrCat("--config.file=", (dir / "prometheus.yml").string()),
           absl::StrCat("--storage.tsdb.path=", (dir / absl::StrCat("data", attempt)).string()),
           absl::StrCat("--web.listen-address=127.0.0.1:", p->port_)},
          dir / absl::StrCat("prometheus", attempt, ".log"));
      if (!process.ok()) {
        ADD_FAILURE() << process.status();
        return nullptr;
      }
      p->process_ = *std::move(process);
      const auto deadline = Clock::now() + seconds(60);
      while (Clock::now() < deadline && p->process_->Wait(std::chrono::milliseconds(0)) == -1) {
        if (testing::HttpGet(p->port_, "/-/ready").status == 200) return p;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      ADD_FAILURE() << "prometheus did not start (attempt " << attempt << "):\n"
                    << p->process_->Log();
    }
    return nullptr;
  }

  // The `data` member of an API answer, or null.
  json::value Api(const std::string& path_and_query) const {
    const testing::HttpResponse r = testing::HttpGet(port_, path_and_query);
    boost::system::error_code ec;
    const json::value body = json::parse(r.body, ec);
    if (r.status != 200 || ec || body.at("status") != "success") return nullptr;
    return body.at("data");
  }
  bool HasData(const std::string& expr) const {
    const json::value data = Api("/api/v1/query?query=" + UrlEncode(expr));
    return data.is_object() && !data.at("result").as_array().empty();
  }

 private:
  Prometheus() = default;
  int port_ = 0;
  std::unique_ptr<testing::ChildProcess> process_;
};

TEST(PrometheusTest, EveryDashboardQueryReturnsDataAndEveryRuleEvaluates) {
  ASSERT_TRUE(fs::exists(kPrometheus))
      << kPrometheus << " not found: install Debian's prometheus package (scripts/setup.sh)";
  const fs::path dashboard_path =
      testing::SourceDir() / "deploy" / "grafana" / "strata-dashboard.json";
  const json::value dashboard = json::parse(ReadFile(dashboard_path));
  std::vector<PanelQuery> queries = DashboardQueries(dashboard);
  ASSERT_GE(queries.size(), 20u);
  // A recording rule's series appears an evaluation after its inputs do: wait for it too.
  queries.push_back({"(recording rule)", "strata:ttft_over_objective:ratio_rate5m"});

  auto serve = testing::ServeProcess::Start({"--tp", "2", "--threads", "1",
                                             "--served-model-name", "m"});
  ASSERT_TRUE(serve.ok()) << serve.status();
  const int port = (*serve)->port();
  auto prometheus = Prometheus::Start(port);
  ASSERT_NE(prometheus, nullptr);

  // Load: streamed and whole completions, a few requests the server refuses (400), probes.
  std::atomic<bool> stop = false;
  std::vector<std::thread> clients;
  for (int c = 0; c < 3; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; !stop; ++i) {
        testing::HttpPost(port, "/v1/completions",
                          json::serialize(testing::GreedyRequest(c + i % 5, 24, (i + c) % 2 == 0)));
        if (i % 4 == 0) testing::HttpPost(port, "/v1/completions", "{\"model\": ");
        testing::HttpGet(port, "/ready");
      }
    });
  }

  // Every query has data once a few scrapes have seen the load.
  std::map<std::string, bool> has_data;
  const auto deadline = Clock::now() + seconds(90);
  for (bool all = false; !all && Clock::now() < deadline;) {
    std::this_thread::sleep_for(seconds(1));
    all = true;
    for (const PanelQuery& q : queries) {
      bool& ok = has_data[q.expr];
      if (!ok) ok = prometheus->HasData(q.expr);
      all = all && ok;
    }
  }
  stop = true;
  for (std::thread& t : clients) t.join();
  for (const PanelQuery& q : queries) {
    EXPECT_TRUE(has_data[q.expr]) << "panel '" << q.panel << "': no data for " << q.expr;
  }

  // The coordinator variable lists the coordinator.
  const json::value instances = prometheus->Api("/api/v1/label/instance/values?match[]=strata_ready");
  ASSERT_TRUE(instances.is_array());
  EXPECT_EQ(instances.as_array().size(), 1u) << json::serialize(instances);

  // Every recording and alerting rule evaluates without error against the real metrics (once
  // each has been evaluated on them), and nothing fires on a healthy server.
  json::value rules;
  for (const auto until = Clock::now() + seconds(30); Clock::now() < until;) {
    rules = prometheus->Api("/api/v1/rules");
    bool evaluated = rules.is_object();
    for (const json::value& group : evaluated ? rules.at("groups").as_array() : json::array()) {
      for (const json::value& rule : group.at("rules").as_array()) {
        evaluated = evaluated && rule.at("health") != "unknown";
      }
    }
    if (evaluated) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(rules.is_object());
  int count = 0;
  for (const json::value& group : rules.at("groups").as_array()) {
    for (const json::value& rule : group.at("rules").as_array()) {
      ++count;
      EXPECT_EQ(rule.at("health"), "ok") << json::serialize(rule);
      if (rule.at("type") == "alerting") {
        EXPECT_EQ(rule.at("state"), "inactive") << json::serialize(rule);
      }
    }
  }
  EXPECT_EQ(count, 11);
}

}  // namespace
}  // namespace strata

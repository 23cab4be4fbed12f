// A network partition between nodes: `strata coordinator --replicas 2 --tp 2 --pp 2` in this
// network namespace and eight `strata worker` processes on four "nodes", each node its own
// network namespace joined to a bridge by a veth pair (made by the test; needs root). Replica 0
// runs on nodes a1 and a2 (a TP 2 stage on each), replica 1 on b1 and b2. Under 24 streams
// node a2's link is cut: replica 0 fails, its streams move to replica 1 and end with exactly
// their undisturbed tokens (or an explicit error event); none hangs. When the link comes back
// the cut node's workers register again and replica 0 is reloaded.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "gtest/gtest.h"
#include "tests/integration/completion_streams.h"
#include "tests/testing/child_process.h"
#include "tests/testing/http_client.h"
#include "tests/testing/shared_data.h"
#include "tests/testing/strata_binary.h"

namespace strata {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr int kStreams = 24;

bool Sh(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

// A bridge here and one network namespace per node, each with a veth on the bridge; removed by
// the destructor.
class Nodes {
 public:
  explicit Nodes(int n) : tag_(std::to_string(getpid() % 100000)), subnet_(Subnet()) {
    ok_ = Sh("ip link add " + Bridge() + " type bridge") &&
          Sh("ip addr add " + HostIp() + "/24 dev " + Bridge()) &&
          Sh("ip link set " + Bridge() + " up");
    for (int i = 0; ok_ && i < n; ++i) {
      ++made_;
      const std::string ns = Ns(i), in = "ip netns exec " + ns + " ";
      ok_ = Sh("ip netns add " + ns) &&
            Sh("ip link add " + HostSide(i) + " type veth peer name " + NodeSide(i)) &&
            Sh("ip link set " + NodeSide(i) + " netns " + ns) &&
            Sh("ip link set " + HostSide(i) + " master " + Bridge()) &&
            Sh("ip link set " + HostSide(i) + " up") &&
            Sh(in + "ip addr add " + NodeIp(i) + "/24 dev " + NodeSide(i)) &&
            Sh(in + "ip link set " + NodeSide(i) + " up") && Sh(in + "ip link set lo up");
    }
  }
  ~Nodes() {
    for (int i = 0; i < made_; ++i) {
      Sh("ip netns del " + Ns(i));
      Sh("ip link del " + HostSide(i));
    }
    Sh("ip link del " + Bridge());
  }
  bool ok() const { return ok_; }
  std::string HostIp() const { return subnet_ + ".1"; }
  std::string NodeIp(int i) const { return subnet_ + "." + std::to_string(10 + i); }
  std::string Ns(int i) const { return "strata" + tag_ + "n" + std::to_string(i); }
  bool Cut(int i) { return Sh("ip link set " + HostSide(i) + " down"); }
  bool Restore(int i) { return Sh("ip link set " + HostSide(i) + " up"); }

 private:
  std::string Subnet() const { return "10.213." + std::to_string(getpid() % 250); }
  std::string Bridge() const { return "sbr" + tag_; }
  std::string HostSide(int i) const { return "svh" + tag_ + "n" + std::to_string(i); }
  std::string NodeSide(int i) const { return "svn" + tag_ + "n" + std::to_string(i); }

  std::string tag_, subnet_;
  bool ok_ = false;
  int made_ = 0;
};

json::object Request(int i, bool stream) {
  json::object r = testing::GreedyRequest(i % 12, 16 + (i * 29) % 120, stream);
  r["prompt"].as_array().push_back(1 + i);
  if (i % 2 == 1) {
    r["temperature"] = 0.8;
    r["seed"] = 500 + i;
  }
  return r;
}

// The first match of `pattern`'s group 1 in `process`'s log within `timeout`, or "".
std::string AwaitLog(const testing::ChildProcess& process, const std::string& pattern,
                     int occurrence, std::chrono::milliseconds timeout) {
  const std::regex re(pattern);
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    const std::string log = process.Log();
    int seen = 0;
    for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator();
         ++it) {
      if (seen++ == occurrence) return (*it)[1];
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  return "";
}

TEST(PartitionTest, CuttingANodesLinkMovesItsReplicasStreamsToTheOther) {
  if (geteuid() != 0 || !Sh("ip netns list")) GTEST_SKIP() << "needs root and iproute2";
  Nodes nodes(4);  // a1 a2 b1 b2
  ASSERT_TRUE(nodes.ok()) << "could not make the network namespaces";
  const std::filesystem::path logs = testing::TempDir("partition_test");
  auto coordinator = testing::ChildProcess::Spawn(
      {testing::StrataBinary(), "coordinator", "--listen", nodes.HostIp() + ":0", "--replicas",
       "2", "--tp", "2", "--pp", "2", "--http", "127.0.0.1:0", "--served-model-name", "m",
       "--step-timeout-ms", "1500", "--lease-ms", "1500", "--heartbeat-ms", "250"},
      logs / "coordinator.log");
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  std::vector<std::string> addresses;
  for (int r = 0; r < 2; ++r) {
    addresses.push_back(AwaitLog(**coordinator, "waiting for 4 worker\\(s\\) at ([0-9.:]+)", r,
                                 seconds(30)));
    ASSERT_FALSE(addresses.back().empty()) << (*coordinator)->Log();
  }
  std::vector<std::unique_ptr<testing::ChildProcess>> workers;
  const char* names[] = {"a1", "a2", "b1", "b2"};
  for (int node = 0; node < 4; ++node) {
    for (int k = 0; k < 2; ++k) {
      auto worker = testing::ChildProcess::Spawn(
          {"/usr/sbin/ip", "netns", "exec", nodes.Ns(node), testing::StrataBinary(), "worker",
           "--coordinator", addresses[node / 2], "--listen", nodes.NodeIp(node) + ":0",
           "--advertise-host", nodes.NodeIp(node), "--node-name", names[node], "--threads", "1"},
          logs / absl::StrCat("worker-", names[node], "-", k, ".log"));
      ASSERT_TRUE(worker.ok()) << worker.status();
      workers.push_back(*std::move(worker));
    }
  }
  const std::string port_text = AwaitLog(**coordinator, "HTTP on port ([0-9]+)", 0, seconds(60));
  ASSERT_FALSE(port_text.empty()) << (*coordinator)->Log();
  const int port = std::stoi(port_text);

  std::vector<std::vector<int32_t>> expected(kStreams);
  {
    std::vector<std::thread> clients;
    for (int i = 0; i < kStreams; ++i) {
      clients.emplace_back([&, i] {
        const testing::HttpResponse r =
            testing::HttpPost(port, "/v1/completions", json::serialize(Request(i, false)));
        ASSERT_EQ(r.status, 200) << r.body;
        const json::value body = json::parse(r.body);
        for (const json::value& id : body.at("choices").at(0).at("token_ids").as_array()) {
          expected[i].push_back(static_cast<int32_t>(id.to_number<int64_t>()));
        }
      });
    }
    for (std::thread& t : clients) t.join();
  }

  std::vector<std::unique_ptr<testing::RawConnection>> streams;
  for (int i = 0; i < kStreams; ++i) {
    streams.push_back(std::make_unique<testing::RawConnection>(port));
    ASSERT_TRUE(streams.back()->Send(testing::Http10Post(Request(i, true))));
  }
  std::vector<std::string> raw(kStreams);
  for (int i = 0; i < kStreams; ++i) raw[i] = streams[i]->ReadUntil("token_ids", seconds(60));
  ASSERT_TRUE(nodes.Cut(1)) << "could not cut node a2's link";

  int exact = 0;
  for (int i = 0; i < kStreams; ++i) {
    bool closed = false;
    raw[i] += streams[i]->ReadToEnd(seconds(120), &closed);
    EXPECT_TRUE(closed) << "stream " << i << " hangs";
    const testing::Streamed got = testing::ParseStream(raw[i]);
    if (!got.error.empty()) continue;  // explicit: allowed
    EXPECT_TRUE(got.finished) << "stream " << i << " ended without finishing";
    EXPECT_EQ(got.ids, expected[i]) << "stream " << i;
    exact += got.ids == expected[i];
  }
  std::printf("[ partition] %d of %d streams exact\n", exact, kStreams);
  EXPECT_GE(exact, kStreams * 9 / 10) << (*coordinator)->Log();
  const std::string metrics = testing::HttpGet(port, "/metrics").body;
  EXPECT_NE(metrics.find("strata_replica_handoffs_total "), std::string::npos);
  EXPECT_EQ(metrics.find("strata_replica_handoffs_total 0\n"), std::string::npos) << metrics;
  // Replica 1 still serves: ready, and a new request is exact.
  EXPECT_EQ(testing::HttpGet(port, "/ready").status, 200);
  const testing::HttpResponse again =
      testing::HttpPost(port, "/v1/completions", json::serialize(Request(2, false)));
  EXPECT_EQ(again.status, 200) << again.body;

  // The link back: a2's workers, declared dead, find the coordinator no longer knows them and
  // register again; replica 0 is reloaded and all eight ranks are up.
  ASSERT_TRUE(nodes.Restore(1));
  const auto deadline = Clock::now() + seconds(60);
  std::string now;
  auto ranks_up = [&] {
    now = testing::HttpGet(port, "/metrics").body;
    int up = 0;
    for (size_t at = 0; (at = now.find("\nstrata_worker_up{", at)) != std::string::npos; ++at) {
      const size_t end = now.find('\n', at + 1);
      up += now.compare(end - 2, 2, " 1") == 0;
    }
    return up;
  };
  while (ranks_up() < 8 && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(ranks_up(), 8) << now << (*coordinator)->Log();
  EXPECT_EQ(now.find("strata_cluster_recoveries_total 0\n"), std::string::npos) << now;
  (*coordinator)->Stop(seconds(5));
  for (auto& w : workers) w->Stop(seconds(2));
}

}  // namespace
}  // namespace strata

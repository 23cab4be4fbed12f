// Mutual TLS between the coordinator and its workers, with certificates this test issues
// (openssl, as an operator would): each side refuses a peer without a certificate from the
// cluster's authority, host names are checked (or the one --tls-server-name gives), and a
// whole `strata serve` over mutual TLS generates the same tokens as over plaintext.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "coordinator/cluster/coordinator_server.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "proto/tls.h"
#include "strata/v1/worker.grpc.pb.h"
#include "tests/integration/completion_streams.h"
#include "tests/testing/http_client.h"
#include "tests/testing/serve_process.h"
#include "tests/testing/shared_data.h"
#include "worker/service/worker_agent.h"
#include "worker/service/worker_server.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// An authority and certificates it signs, written with the openssl command line.
class Pki {
 public:
  explicit Pki(const std::string& name) : dir_(testing::TempDir(name)) {
    Run(absl::StrCat("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                     "-days 1 -subj /CN=", name, "-ca -keyout ", Q("ca.key"), " -out ",
                     Q("ca.pem")));
  }
  // A certificate for client and server use with the given subjectAltName.
  TlsFiles Issue(const std::string& name, const std::string& san) const {
    std::ofstream(dir_ / (name + ".ext"))
        << "subjectAltName=" << san << "\nextendedKeyUsage=serverAuth,clientAuth\n";
    Run(absl::StrCat("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                     "-subj /CN=", name, " -keyout ", Q(name + ".key"), " -out ",
                     Q(name + ".csr")));
    Run(absl::StrCat("openssl x509 -req -days 1 -in ", Q(name + ".csr"), " -CA ", Q("ca.pem"),
                     " -CAkey ", Q("ca.key"), " -CAcreateserial -extfile ", Q(name + ".ext"),
                     " -out ", Q(name + ".pem")));
    return {.cert = (dir_ / (name + ".pem")).string(),
            .key = (dir_ / (name + ".key")).string(),
            .ca = (dir_ / "ca.pem").string(),
            .server_name = ""};
  }

 private:
  std::string Q(const std::string& file) const { return "'" + (dir_ / file).string() + "'"; }
  static void Run(const std::string& command) {
    ASSERT_EQ(std::system((command + " >/dev/null 2>&1").c_str()), 0) << command;
  }
  fs::path dir_;
};

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = new Pki("cluster");
    rogue_ = new Pki("rogue");
  }
  static void TearDownTestSuite() {
    delete cluster_;
    delete rogue_;
  }
  static Pki* cluster_;
  static Pki* rogue_;
};
Pki* TlsTest::cluster_ = nullptr;
Pki* TlsTest::rogue_ = nullptr;

std::unique_ptr<CoordinatorServer> Coordinator(const TlsFiles& tls) {
  CoordinatorServerOptions options;
  options.host = "127.0.0.1";
  options.tls = tls;
  auto server = CoordinatorServer::Start(options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

absl::Status Join(const CoordinatorServer& coordinator, const TlsFiles& tls,
                  const std::string& address = "") {
  WorkerAgentOptions options;
  options.coordinator = address.empty() ? coordinator.address() : address;
  options.host = "127.0.0.1:1";
  options.inventory.node_name = "n";
  options.inventory.device_count = 1;
  options.inventory.memory_bytes = {int64_t{1} << 30};
  options.rpc_timeout = milliseconds(1500);
  options.tls = tls;
  auto agent = WorkerAgent::Start(options);
  return agent.status();
}

TEST_F(TlsTest, TheCoordinatorAdmitsOnlyWorkersWithTheClustersCertificates) {
  const TlsFiles node = cluster_->Issue("node", "IP:127.0.0.1,DNS:localhost");
  auto coordinator = Coordinator(node);
  ASSERT_NE(coordinator, nullptr);
  const absl::Status joined = Join(*coordinator, node);
  EXPECT_TRUE(joined.ok()) << joined;
  EXPECT_FALSE(Join(*coordinator, {}).ok()) << "plaintext";
  EXPECT_FALSE(Join(*coordinator, rogue_->Issue("rogue-node", "IP:127.0.0.1")).ok())
      << "a certificate from another authority";
  EXPECT_EQ(coordinator->membership().AliveCount(), 1);
}

TEST_F(TlsTest, AWorkerChecksTheCoordinatorsCertificate) {
  const TlsFiles node = cluster_->Issue("node2", "IP:127.0.0.1");
  // A coordinator whose certificate is from another authority: the worker refuses it.
  auto impostor = Coordinator(rogue_->Issue("impostor", "IP:127.0.0.1"));
  ASSERT_NE(impostor, nullptr);
  EXPECT_FALSE(Join(*impostor, node).ok());
  EXPECT_EQ(impostor->membership().AliveCount(), 0);
  // A plaintext coordinator: the worker does not fall back to plaintext.
  auto plain = Coordinator({});
  ASSERT_NE(plain, nullptr);
  EXPECT_FALSE(Join(*plain, node).ok());
}

TEST_F(TlsTest, HostNamesAreCheckedOrTheConfiguredServerName) {
  // A certificate issued to a name, not to the address dialled (a pod's IP is not known when
  // its certificate is issued).
  TlsFiles named = cluster_->Issue("named", "DNS:strata-cluster");
  auto coordinator = Coordinator(named);
  ASSERT_NE(coordinator, nullptr);
  EXPECT_FALSE(Join(*coordinator, named).ok()) << "127.0.0.1 is not strata-cluster";
  named.server_name = "strata-cluster";
  EXPECT_TRUE(Join(*coordinator, named).ok());
}

TEST_F(TlsTest, AWorkersStepServiceRefusesAnUnauthenticatedCoordinator) {
  const TlsFiles node = cluster_->Issue("node3", "IP:127.0.0.1");
  WorkerServerOptions options;
  options.bind_host = "127.0.0.1";
  options.coordinator = "127.0.0.1:1";
  options.tls = node;
  auto server = WorkerServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto health = [&](std::shared_ptr<grpc::ChannelCredentials> credentials) {
    auto stub = v1::WorkerService::NewStub(grpc::CreateChannel((*server)->address(), credentials));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + milliseconds(1500));
    v1::WorkerHealthReply reply;
    return stub->Health(&context, v1::WorkerHealthRequest(), &reply).ok();
  };
  EXPECT_TRUE(health(*ChannelCredentialsFor(node)));
  EXPECT_FALSE(health(grpc::InsecureChannelCredentials()));
  EXPECT_FALSE(health(*ChannelCredentialsFor(rogue_->Issue("rogue2", "IP:127.0.0.1"))));
  // A coordinator that trusts the authority but shows no certificate of its own.
  grpc::SslCredentialsOptions anonymous;
  anonymous.pem_root_certs = [&] {
    std::ifstream in(node.ca);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  EXPECT_FALSE(health(grpc::SslCredentials(anonymous)));
}

TEST_F(TlsTest, BadTlsFlagsFailAtStartNamingTheFlag) {
  const TlsFiles node = cluster_->Issue("node4", "IP:127.0.0.1");
  CoordinatorServerOptions options;
  options.host = "127.0.0.1";
  options.tls = {.cert = node.cert, .key = "", .ca = node.ca, .server_name = ""};
  auto partial = CoordinatorServer::Start(options);
  ASSERT_FALSE(partial.ok());
  EXPECT_NE(partial.status().message().find("--tls-key is missing"), std::string::npos)
      << partial.status();
  options.tls = {.cert = node.cert, .key = node.key, .ca = "/nonexistent/ca.pem",
                 .server_name = ""};
  auto missing = CoordinatorServer::Start(options);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("--tls-ca: cannot read /nonexistent/ca.pem"),
            std::string::npos) << missing.status();
}

// strata serve with its coordinator and workers over mutual TLS: the same tokens as plaintext.
TEST_F(TlsTest, ServeOverMutualTlsGeneratesTheSameTokens) {
  const TlsFiles node = cluster_->Issue("serve", "IP:127.0.0.1");
  auto tokens = [](std::vector<std::string> args) -> std::string {
    args.insert(args.end(), {"--tp", "2", "--threads", "1", "--served-model-name", "m"});
    auto serve = testing::ServeProcess::Start(args);
    EXPECT_TRUE(serve.ok()) << serve.status();
    if (!serve.ok()) return "";
    const testing::HttpResponse r = testing::HttpPost(
        (*serve)->port(), "/v1/completions",
        boost::json::serialize(testing::GreedyRequest(3, 16, false)));
    EXPECT_EQ(r.status, 200) << r.body;
    const std::string log = (*serve)->Log();
    const bool tls = std::find(args.begin(), args.end(), "--tls-cert") != args.end();
    EXPECT_EQ(log.find("(mutual TLS)") != std::string::npos, tls) << log;
    EXPECT_EQ(log.find(", mutual TLS") != std::string::npos, tls) << log;
    return boost::json::serialize(boost::json::parse(r.body).at("choices").at(0).at("token_ids"));
  };
  const std::string plain = tokens({});
  const std::string secure =
      tokens({"--tls-cert", node.cert, "--tls-key", node.key, "--tls-ca", node.ca});
  EXPECT_FALSE(plain.empty());
  EXPECT_EQ(secure, plain);
}

}  // namespace
}  // namespace strata

#include "coordinator/cluster/coordinator_server.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "coordinator/cluster/cluster_service.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"

namespace strata {
namespace {

// How long Stop() lets in-flight RPCs finish before cancelling them.
constexpr std::chrono::milliseconds kShutdownGrace(1000);

}  // namespace

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    const CoordinatorServerOptions& options) {
  std::unique_ptr<CoordinatorServer> server(new CoordinatorServer());
  server->host_ = options.host;
  server->membership_ = std::make_unique<Membership>(options.membership);
  server->store_ = std::make_unique<RendezvousStore>();
  server->service_ = std::make_unique<ClusterServiceImpl>(*server->membership_, *server->store_);

  const std::string listen = absl::StrCat(options.host, ":", options.port);
  auto credentials = ServerCredentialsFor(options.tls);
  if (!credentials.ok()) return credentials.status();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, *credentials, &server->port_);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("coordinator: cannot listen on ", listen));
  }
  STRATA_LOG_INFO("coordinator cluster service listening on {}:{}{}", options.host, server->port_,
                  options.tls.enabled() ? " (mutual TLS)" : "");
  return server;
}

CoordinatorServer::~CoordinatorServer() { Stop(); }

void CoordinatorServer::Stop() {
  if (server_ == nullptr) return;
  store_->Close();
  server_->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  server_->Wait();
  server_.reset();
}

std::string CoordinatorServer::address() const {
  const bool wildcard = host_.empty() || host_ == "0.0.0.0" || host_ == "[::]" || host_ == "::";
  return absl::StrCat(wildcard ? "127.0.0.1" : host_, ":", port_);
}

}  // namespace strata

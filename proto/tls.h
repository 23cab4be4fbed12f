// Mutual TLS between the coordinator and its workers. Every process of a cluster gets the same
// three PEM files (as a Kubernetes Secret mounts them): its certificate, its private key and
// the certificate authority that signed every member's certificate. Servers (the coordinator's
// cluster service, each worker's step service) require and verify a client certificate from
// that CA; clients verify the server's against it, host name included. Without files both
// sides speak plaintext, as before; giving only some of the three is an error.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace grpc {
class ChannelArguments;
class ChannelCredentials;
class ServerCredentials;
}  // namespace grpc

namespace strata {

struct TlsFiles {
  std::string cert;  // PEM certificate chain of this process
  std::string key;   // PEM private key of `cert`
  std::string ca;    // PEM certificate(s) of the authority every peer's certificate chains to
  // The name a server's certificate is checked against; empty: the host dialled. One name for
  // every member (a Kubernetes pod's IP is not known when its certificate is issued).
  std::string server_name;

  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

// All three files or none; InvalidArgument naming the missing flag otherwise.
absl::Status ValidateTlsFiles(const TlsFiles& files);

// The credentials of a listening port: mutual TLS with `files` (read now), or insecure
// without. NotFound naming a file that cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const TlsFiles& files);

// The credentials of a channel to a peer: mutual TLS with `files` (read now), or insecure.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const TlsFiles& files);

// Sets what a channel with these credentials needs in its arguments (the server name).
void ApplyTls(const TlsFiles& files, grpc::ChannelArguments& args);

}  // namespace strata

// absl::Status <-> grpc::Status at the service edge. Both use the canonical code space, so
// codes map one to one and messages pass through.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace strata {

// Server side: an absl error becomes the RPC's status.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Client side: the RPC's status as absl, prefixed with `what` (e.g. "StoreGet 'key'").
absl::Status FromGrpcStatus(const grpc::Status& status, const std::string& what);

}  // namespace strata

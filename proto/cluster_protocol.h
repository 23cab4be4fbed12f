// Plain C++ side of the cluster protocol (strata/v1/cluster.proto), shared by the coordinator
// and the workers without pulling in generated headers.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/device.h"
#include "common/dtype.h"

namespace strata {

// RegisterRequest.protocol_version and LoadRequest.protocol_version. Bump on any incompatible
// change to cluster.proto or worker.proto (2: SequenceStep.start, penalties, logprobs; 3: typed
// device inventory with the KV dtype, step limits in the shard assignment; 4: the rendezvous
// store and Deregister need the registration's session token, which loads carry); the
// coordinator refuses a worker with another version (FAILED_PRECONDITION naming both).
inline constexpr uint32_t kClusterProtocolVersion = 4;

// Service-edge limits on the rendezvous store, enforced by the coordinator.
inline constexpr size_t kMaxStoreKeyBytes = 4096;
inline constexpr size_t kMaxStoreValueBytes = size_t{1} << 20;  // 1 MiB
inline constexpr std::chrono::milliseconds kMaxStoreWait = std::chrono::minutes(5);

// A load's rendezvous keys all start with "g<generation>/" (the worker's group prefixes). The
// coordinator's store forgets a generation's keys once one two generations newer is in use.
inline std::string StoreGenerationPrefix(uint64_t generation) {
  std::string prefix = "g";
  prefix += std::to_string(generation);
  prefix += '/';
  return prefix;
}

// What one worker brings to the cluster (proto: strata.v1.Inventory).
struct DeviceInventory {
  DeviceKind device_kind = DeviceKind::kCpu;
  int32_t device_count = 0;
  std::vector<int64_t> memory_bytes;  // [device_count] bytes per device
  std::string node_name;              // link hint: workers on one node share fast links
  DType kv_dtype = DType::kF32;       // what the worker's KV cache holds
  std::string device_name;
};

}  // namespace strata

// The kinds of device a backend runs on, and what a worker reports about its devices. Model,
// worker and planner code branch on these values, never on names; names exist for flags, logs
// and the wire.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/dtype.h"

namespace strata {

enum class DeviceKind : uint8_t {
  kCpu,   // host memory, kernels/cpu
  kCuda,  // an NVIDIA GPU, kernels/cuda
};

// "cpu", "cuda".
const char* DeviceKindName(DeviceKind kind);
// Parses a name as printed by DeviceKindName.
absl::StatusOr<DeviceKind> ParseDeviceKind(std::string_view name);

// A device selection as users write it: "cpu", "cuda", "cuda:1".
struct DeviceSpec {
  DeviceKind kind = DeviceKind::kCpu;
  int index = -1;  // -1: the default (cpu: the host; cuda: device 0, or one per worker)
  // The KV cache's element type (`--kv-dtype`); nullopt: the backend's default (cpu f32, cuda
  // bf16). A backend refuses one it does not keep.
  std::optional<DType> kv_dtype;
  // Queue every op of every step (`--eager`): no decode steps replayed from recorded graphs
  // (the CUDA backend's; the CPU has none).
  bool eager = false;
  // Choose each projection's matmul algorithm per batch size (`--per-shape-matmul`, the CUDA
  // backend's): possibly faster, but a request's numbers may then depend on its batch. Off,
  // one algorithm per weight runs every batch size (batch invariance).
  bool per_shape_matmul = false;
  // Prefill attention on the Hopper kernel (wgmma, TMA) where it has the layer's shape
  // (`--hopper-prefill`, the CUDA backend's, compute capability 9.0 only). Off, every prefill
  // runs the portable kernel. Either way a request's bits do not depend on its batch; the two
  // kernels' bits differ.
  bool hopper_prefill = false;

  // Device `index` of `kind`, every other setting at its default.
  static DeviceSpec Of(DeviceKind kind, int index) {
    DeviceSpec spec;
    spec.kind = kind;
    spec.index = index;
    return spec;
  }
};
absl::StatusOr<DeviceSpec> ParseDeviceSpec(std::string_view text);

// What a backend reports about the device it runs on.
struct DeviceInfo {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;             // which device of its kind
  int count = 1;             // devices of this kind on the host
  std::string name;          // "x86-64 avx512", "NVIDIA H200"
  int64_t memory_total = 0;  // bytes
  int64_t memory_free = 0;   // bytes available to Strata now
  // What the backend computes in: activations, and the element type of its KV cache (the
  // planner sizes the cache by it).
  DType activation_dtype = DType::kF32;
  DType kv_dtype = DType::kF32;
  // The one element type the backend keeps matrices in whatever the checkpoint stores (bf16 on
  // GPUs: no quantized GPU matmul yet); nullopt where they stay as stored or as converted on
  // load (the CPU).
  std::optional<DType> weight_dtype;
  // True when tensors live in host memory (collectives run on host buffers: Gloo); false for
  // device memory (NCCL).
  bool host_memory = true;
};

}  // namespace strata

// The CUDA backend: kernels/cuda and cuBLASLt on one GPU, ops queued on one stream.
//
// Memory: matrices (every weight of two or more dimensions) are stored in bf16 and vectors
// (norm weights, biases, RoPE tables) in f32, whatever the checkpoint's dtype (quantized blocks are expanded to bf16
// at load); activations are bf16 (f32 tensors are accepted by the element-wise ops, and logits
// are f32); the KV cache is bf16, or fp8 e4m3 with a scale per row (MakeCudaBackend). Attention
// runs our kernels (kernels/cuda/attention.h).
// Sampling: on the device, by the host sampler's rules (logit bias and penalties bit for bit,
// then temperature, top-k, top-p, min-p with the host's Philox numbers; logprobs of the raw
// row); only ids and logprobs leave it.
//
// Mixture of experts: routed and run on the device (kernels/cuda/moe.cu), no host sync, so MoE
// models' decode steps are recorded too; each expert's weights are read once per 64 of its
// tokens.
// Tensor parallelism: a communicator made on stream() (NCCL) queues its collectives in order
// with the step's ops; Sync() waits for them through SetStreamWait's bound first.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/device.h"
#include "worker/backend/backend.h"

namespace strata {

// The GPU `index` (0 when negative) as a backend would see it, or FailedPrecondition naming
// why there is none (no device visible, index out of range, compute capability below 8.0).
absl::StatusOr<DeviceInfo> CudaDeviceInfo(int index);

// OK if GPU `index` can run --hopper-prefill (compute capability 9.0, and a build with sm_90a
// code), else FailedPrecondition naming the device's compute capability and what is missing.
absl::Status CheckHopperPrefill(int index);

// A backend on GPU `spec.index` whose KV cache holds `spec.kv_dtype` (default bf16): bf16, or
// f8_e4m3 (a scale per (slot, KV head) row beside it: KvLayer::k_scale / v_scale). Unless
// `spec.eager`, decode steps of up to 256 sequences are padded to a recorded size and replayed
// as CUDA graphs (Backend::RunGraph). Projections keep batch invariance unless
// `spec.per_shape_matmul` (CudaMatMul). `spec.hopper_prefill` needs a compute capability 9.0
// device (FailedPrecondition elsewhere).
absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(const DeviceSpec& spec);

}  // namespace strata

// The attention kernel registry: one row per compiled instance (kernels/cuda/CMakeLists.txt
// generates one .cu per row), looked up by descriptor. Validation of a step's arguments
// happens here, once, before any launch.
#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/attention.h"

namespace strata::kernels::cuda {
namespace attention {
// Defined in attention_prefill.cuh / attention_decode.cuh / attention_generic.cuh, instantiated in
// generated units.
template <int kDim, AttentionDType kDType, bool kFp8Kv>
absl::Status LaunchPrefill(const PagedAttentionArgs& args, void* stream);
template <int kDim, AttentionDType kDType, bool kFp8Kv>
absl::Status LaunchDecode(const PagedAttentionArgs& args, void* stream);
template <int kDim, AttentionDType kDType, bool kFp8Kv>
absl::Status LaunchGeneric(const PagedAttentionArgs& args, void* stream);
template <int kDim, AttentionDType kDType, bool kFp8Kv>
absl::Status LaunchHopper(const PagedAttentionArgs& args, void* stream);
}  // namespace attention

namespace {

using attention::LaunchDecode;
using attention::LaunchGeneric;
using attention::LaunchHopper;
using attention::LaunchPrefill;
constexpr AttentionKind kPrefill = AttentionKind::kPrefill;
constexpr AttentionKind kDecode = AttentionKind::kDecode;
constexpr AttentionDType kBf16 = AttentionDType::kBf16;
constexpr AttentionDType kFp16 = AttentionDType::kFp16;

// The rows of one kind, head dim, dtype and cache type (each kernel supports windows and caps).
template <int kDim, AttentionDType kDType, bool kFp8>
constexpr AttentionKernel Prefill(const char* name) {
  return {name, kPrefill, kDim, kDim, kDType, true, true, kFp8, false, 0,
          LaunchPrefill<kDim, kDType, kFp8>};
}
template <int kDim, AttentionDType kDType>
constexpr AttentionKernel Hopper(const char* name) {
  return {name, kPrefill, kDim, kDim, kDType, true, true, false, false, 90,
          LaunchHopper<kDim, kDType, false>};
}
template <int kDim, AttentionDType kDType, bool kFp8>
constexpr AttentionKernel Decode(const char* name) {
  return {name, kDecode, kDim, kDim, kDType, true, true, kFp8, false, 0,
          LaunchDecode<kDim, kDType, kFp8>};
}
template <int kMaxDim, AttentionDType kDType, bool kFp8>
constexpr AttentionKernel Generic(const char* name) {
  return {name, kPrefill, 0, kMaxDim, kDType, true, true, kFp8, true, 0,
          LaunchGeneric<kMaxDim, kDType, kFp8>};
}

// One row per instance. The generic rows (head dim 0: any up to their max, smallest first)
// serve both kinds where no tuned instance has the head dim, and latent attention. fp8 caches
// are read beside bf16 activations only. The Hopper rows come before the portable prefill rows
// of their head dims, which take what they do not (not asked for, another device, fp8 caches,
// other block sizes).
constexpr std::array kKernels = {
    Hopper<64, kBf16>("hopper_prefill_d64_bf16"),
    Hopper<128, kBf16>("hopper_prefill_d128_bf16"),
    Hopper<64, kFp16>("hopper_prefill_d64_fp16"),
    Hopper<128, kFp16>("hopper_prefill_d128_fp16"),
    Prefill<64, kBf16, false>("prefill_d64_bf16"),
    Prefill<128, kBf16, false>("prefill_d128_bf16"),
    Prefill<256, kBf16, false>("prefill_d256_bf16"),
    Prefill<64, kFp16, false>("prefill_d64_fp16"),
    Prefill<128, kFp16, false>("prefill_d128_fp16"),
    Prefill<256, kFp16, false>("prefill_d256_fp16"),
    Prefill<64, kBf16, true>("prefill_d64_bf16_fp8kv"),
    Prefill<128, kBf16, true>("prefill_d128_bf16_fp8kv"),
    Prefill<256, kBf16, true>("prefill_d256_bf16_fp8kv"),
    Decode<64, kBf16, false>("decode_d64_bf16"),
    Decode<128, kBf16, false>("decode_d128_bf16"),
    Decode<256, kBf16, false>("decode_d256_bf16"),
    Decode<64, kFp16, false>("decode_d64_fp16"),
    Decode<128, kFp16, false>("decode_d128_fp16"),
    Decode<256, kFp16, false>("decode_d256_fp16"),
    Decode<64, kBf16, true>("decode_d64_bf16_fp8kv"),
    Decode<128, kBf16, true>("decode_d128_bf16_fp8kv"),
    Decode<256, kBf16, true>("decode_d256_bf16_fp8kv"),
    Generic<256, kBf16, false>("generic_d256_bf16"),
    Generic<256, kFp16, false>("generic_d256_fp16"),
    Generic<256, kBf16, true>("generic_d256_bf16_fp8kv"),
    Generic<576, kBf16, false>("generic_d576_bf16"),
    Generic<576, kFp16, false>("generic_d576_fp16"),
    Generic<576, kBf16, true>("generic_d576_bf16_fp8kv"),
};
// The largest head dim a generic kernel takes.
constexpr int64_t kGenericMaxHeadDim = [] {
  int64_t most = 0;
  for (const AttentionKernel& kernel : kKernels) {
    if (kernel.head_dim == 0 && kernel.max_head_dim > most) most = kernel.max_head_dim;
  }
  return most;
}();

// Whether V is read from the K rows or is narrower than K: the layouts only the generic
// kernels take.
bool IsLatent(int64_t head_dim, int64_t v_head_dim, bool v_in_k) {
  return v_in_k || (v_head_dim > 0 && v_head_dim != head_dim);
}

// Whether a tuned decode instance (which splits long contexts) has this head dim.
bool HasTunedDecode(int64_t head_dim) {
  for (const AttentionKernel& kernel : kKernels) {
    if (kernel.kind == kDecode && kernel.head_dim == head_dim) return true;
  }
  return false;
}

const char* KindName(AttentionKind kind) {
  return kind == AttentionKind::kPrefill ? "prefill" : "decode";
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The current device's compute capability, asked once per device.
int CurrentDeviceSm() {
  constexpr int kDevices = 64;
  static std::array<std::atomic<int>, kDevices> known{};  // 0: not asked yet
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kDevices) return 0;
  int sm = known[device].load(std::memory_order_relaxed);
  if (sm == 0) {
    sm = ComputeCapability(device);
    known[device].store(sm, std::memory_order_relaxed);
  }
  return sm;
}

}  // namespace

// Builds outside CMake (scripts/gpu-check.sh's rebuild) compile for sm_90a.
#ifndef STRATA_HOPPER_PREFILL_BUILT
#define STRATA_HOPPER_PREFILL_BUILT 1
#endif
bool HopperPrefillBuilt() { return STRATA_HOPPER_PREFILL_BUILT != 0; }

int ComputeCapability(int device) {
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    return 0;
  }
  return major * 10 + minor;
}

const char* AttentionDTypeName(AttentionDType dtype) {
  return dtype == AttentionDType::kBf16 ? "bf16" : "fp16";
}

std::string AttentionDesc::ToString() const {
  return absl::StrCat(KindName(kind), " head_dim=", head_dim,
                      v_head_dim > 0 ? absl::StrCat(" v_head_dim=", v_head_dim) : "",
                      v_in_k ? " v-in-k" : "", " ", AttentionDTypeName(dtype),
                      causal ? " causal" : " non-causal",
                      paged ? " paged" : " contiguous", sliding_window ? " window" : "",
                      softcap ? " softcap" : "", fp8_kv ? " fp8-kv" : "",
                      hopper ? absl::StrCat(" hopper(sm ", sm, ", block ", block_size, ")") : "");
}

absl::StatusOr<const AttentionKernel*> FindAttentionKernel(const AttentionDesc& desc) {
  const std::string what = desc.ToString();
  if (!desc.causal) {
    return absl::InvalidArgumentError(
        absl::StrCat("no attention kernel for ", what, ": only causal attention is built"));
  }
  if (!desc.paged) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no attention kernel for ", what, ": the kernels read K/V from the paged cache only"));
  }
  if (desc.v_head_dim < 0 || desc.v_head_dim > desc.head_dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no attention kernel for ", what, ": v_head_dim must be in [1, head_dim] (0: head_dim)"));
  }
  const bool latent = IsLatent(desc.head_dim, desc.v_head_dim, desc.v_in_k);
  std::string dims;
  const AttentionKernel* generic = nullptr;
  for (const AttentionKernel& kernel : kKernels) {
    if (kernel.dtype != desc.dtype || kernel.fp8_kv != desc.fp8_kv) continue;
    if (desc.sliding_window && !kernel.sliding_window) continue;
    if (desc.softcap && !kernel.softcap) continue;
    if (latent && !kernel.latent) continue;
    if (kernel.sm != 0 && !(HopperPrefillBuilt() && desc.hopper && desc.sm == kernel.sm &&
                            HopperPrefillFits(desc.block_size))) {
      continue;
    }
    if (kernel.head_dim == 0) {
      if (generic == nullptr && desc.head_dim > 0 && desc.head_dim <= kernel.max_head_dim) {
        generic = &kernel;
      }
      continue;
    }
    if (kernel.kind != desc.kind) continue;
    if (kernel.head_dim == desc.head_dim) return &kernel;
    if (kernel.sm == 0) absl::StrAppend(&dims, dims.empty() ? "" : ", ", kernel.head_dim);
  }
  if (generic != nullptr) return generic;
  return absl::NotFoundError(absl::StrCat("no attention kernel for ", what,
                                          " (tuned head dims for this kind, dtype and V layout: ",
                                          dims.empty() ? "none" : dims,
                                          "; the generic kernel takes up to ",
                                          kGenericMaxHeadDim, ")"));
}

int64_t AttentionWorkspaceBytes(int64_t num_seqs, int64_t num_heads, int64_t head_dim,
                                int64_t max_context_len, int64_t v_head_dim, bool v_in_k) {
  const int64_t splits = DecodeMaxSplits(max_context_len);
  if (splits <= 1 || IsLatent(head_dim, v_head_dim, v_in_k) || !HasTunedDecode(head_dim)) {
    return 0;
  }
  return num_seqs * num_heads * splits * (head_dim + 2) * static_cast<int64_t>(sizeof(float));
}

absl::Status ValidateAttentionArgs(const PagedAttentionArgs& a) {
  auto bad = [](auto&&... what) {
    return absl::InvalidArgumentError(absl::StrCat("paged attention: ", what...));
  };
  if (a.num_seqs < 0 || a.num_seqs > 65535) return bad("num_seqs ", a.num_seqs, " not in [0, 65535]");
  if (a.num_heads <= 0 || a.num_heads > 65535 || a.num_kv_heads <= 0 ||
      a.num_heads % a.num_kv_heads != 0) {
    return bad("num_heads ", a.num_heads, " must be a positive multiple of num_kv_heads ",
               a.num_kv_heads, " (at most 65535)");
  }
  if (a.block_size <= 0 || a.max_blocks_per_seq <= 0) {
    return bad("block_size ", a.block_size, " and max_blocks_per_seq ", a.max_blocks_per_seq,
               " must be positive");
  }
  if (a.max_tokens < 0 || a.num_blocks < 0) {
    return bad("max_tokens ", a.max_tokens, " and num_blocks ", a.num_blocks,
               " must not be negative");
  }
  if (a.max_query_len < 0 || a.max_context_len < a.max_query_len ||
      a.max_context_len > a.block_size * a.max_blocks_per_seq || a.max_context_len > (1 << 30)) {
    return bad("max_query_len ", a.max_query_len, " and max_context_len ", a.max_context_len,
               " must satisfy 0 <= query <= context <= block_size * max_blocks_per_seq (",
               a.block_size * a.max_blocks_per_seq, ")");
  }
  if (a.head_dim <= 0 || a.v_head_dim < 0 || a.v_head_dim > a.head_dim) {
    return bad("head_dim ", a.head_dim, " must be positive and v_head_dim ", a.v_head_dim,
               " in [0, head_dim]");
  }
  if (!(a.scale > 0.0f) || !(a.softcap >= 0.0f) || a.sliding_window < 0) {
    return bad("scale ", a.scale, " must be positive, softcap ", a.softcap,
               " and sliding_window ", a.sliding_window, " not negative");
  }
  if (a.hopper && a.num_blocks <= 0) {
    return bad("the Hopper prefill kernel needs num_blocks (the cache's blocks; given ",
               a.num_blocks, ")");
  }
  if (a.num_seqs == 0) return absl::OkStatus();
  // A latent cache has no V of its own: V is read from the K rows (with their scales).
  const void* v_cache = a.v_in_k ? a.k_cache : a.v_cache;
  const float* v_scale = a.v_in_k ? a.k_scale : a.v_scale;
  if (a.q == nullptr || a.k_cache == nullptr || v_cache == nullptr || a.out == nullptr ||
      a.block_tables == nullptr || a.query_start == nullptr || a.context_lens == nullptr) {
    return bad("a null tensor pointer");
  }
  if (!Aligned16(a.q) || !Aligned16(a.k_cache) || !Aligned16(v_cache) || !Aligned16(a.out)) {
    return bad("q, the KV cache and out must be 16-byte aligned");
  }
  if (a.fp8_kv && (a.k_scale == nullptr || v_scale == nullptr)) {
    return bad("an fp8 cache needs its K and V scales");
  }
  const int64_t need =
      AttentionWorkspaceBytes(a.num_seqs, a.num_heads, a.head_dim, a.max_context_len,
                              a.v_head_dim, a.v_in_k);
  if (need > 0 && (a.workspace == nullptr || a.workspace_bytes < need || !Aligned16(a.workspace))) {
    return bad("workspace of ", a.workspace_bytes, " bytes; ", need, " needed for ", a.num_seqs,
               " sequences of up to ", a.max_context_len, " tokens, 16-byte aligned");
  }
  return absl::OkStatus();
}

absl::Status LaunchPagedAttention(const PagedAttentionArgs& args, AttentionDType dtype,
                                  void* stream) {
  if (absl::Status status = ValidateAttentionArgs(args); !status.ok()) return status;
  AttentionDesc desc;
  desc.head_dim = args.head_dim;
  desc.v_head_dim = args.v_head_dim;
  desc.v_in_k = args.v_in_k;
  desc.dtype = dtype;
  desc.sliding_window = args.sliding_window > 0;
  desc.softcap = args.softcap > 0.0f;
  desc.fp8_kv = args.fp8_kv;
  desc.hopper = args.hopper;
  desc.sm = args.hopper ? CurrentDeviceSm() : 0;
  desc.block_size = args.block_size;
  desc.kind = AttentionKind::kDecode;
  absl::StatusOr<const AttentionKernel*> decode = FindAttentionKernel(desc);
  if (!decode.ok()) return decode.status();
  desc.kind = AttentionKind::kPrefill;
  absl::StatusOr<const AttentionKernel*> prefill = FindAttentionKernel(desc);
  if (!prefill.ok()) return prefill.status();
  // Without tuned instances for this head dim or V layout, the generic kernel takes every query
  // token (the choice depends on the layer's shape alone, never on the batch).
  if ((*decode)->head_dim == 0) return (*decode)->launch(args, stream);
  if (absl::Status status = (*decode)->launch(args, stream); !status.ok()) return status;
  if (args.max_query_len <= 1) return absl::OkStatus();
  return (*prefill)->launch(args, stream);
}

}  // namespace strata::kernels::cuda

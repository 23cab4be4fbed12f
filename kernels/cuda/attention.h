// Paged attention on the GPU: our kernels, chosen by a registry on a descriptor.
//
// Two kernels share one argument struct and one cache layout (the CPU's, kernels/cpu/ops.h):
//   * prefill: FlashAttention-2-style tiles (64 query rows x 64 keys per block, 4 warps) on the
//     tensor cores (mma.sync m16n8k16, bf16 or fp16 in, f32 accumulation), an online softmax in
//     registers, K/V read from the paged cache (so a chunk of a prompt sees its cached prefix);
//   * decode: one query token per sequence; a block per (sequence, KV head, key split) serves
//     every query head of that KV head from one read of each K/V row, and splits of long
//     contexts are merged by a reduction kernel (flash-decoding).
// On Hopper (sm_90), where asked (PagedAttentionArgs::hopper), prefill may instead take a kernel
// on warpgroup matrix multiplies with TMA loads (attention_hopper.cuh) for the shapes it has.
// Head dims without a tuned instance, and multi-head latent attention (V the first v_head_dim
// values of each K row), take a generic kernel on CUDA cores (attention_generic.cuh).
// A sequence's kernel, and every reduction order inside it, depends only on that sequence
// (its query length and context length), never on the other sequences of the step: a request
// gives the same bits alone or in any batch. The split of a context into key ranges is
// `DecodeSplit` below, a function of the sequence's own visible span.
//
// This header has no CUDA types (device pointers are raw, streams are `void*`), so host code
// may include it.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#if defined(__CUDACC__)
#define STRATA_HOST_DEVICE __host__ __device__
#else
#define STRATA_HOST_DEVICE
#endif

namespace strata::kernels::cuda {

enum class AttentionDType : uint8_t { kBf16, kFp16 };  // of q, the KV cache and the output
enum class AttentionKind : uint8_t { kPrefill, kDecode };

const char* AttentionDTypeName(AttentionDType dtype);

// What a caller needs from a kernel. The registry answers with a kernel that covers all of it,
// or refuses naming what no kernel has.
struct AttentionDesc {
  AttentionKind kind = AttentionKind::kPrefill;
  int64_t head_dim = 128;  // of q and k
  int64_t v_head_dim = 0;  // of v and the output, at most head_dim (0: head_dim)
  bool v_in_k = false;     // V not stored: a token's V is the first v_head_dim values of its K row
  AttentionDType dtype = AttentionDType::kBf16;
  bool causal = true;
  bool paged = true;
  bool sliding_window = false;
  bool softcap = false;
  bool fp8_kv = false;  // the cache holds fp8 e4m3 with a scale per (slot, KV head) row
  // The Hopper prefill kernel is taken only when asked for, on compute capability 9.0 (`sm`:
  // major * 10 + minor; 0 unknown), for a cache block size it tiles (HopperPrefillFits).
  bool hopper = false;
  int sm = 0;
  int64_t block_size = 0;

  std::string ToString() const;
};

// One step's attention over the paged cache, which already holds the K/V of every query token.
// The device-side metadata is the caller's contract (the backend builds it from the same step
// batch as the host bounds): 1 <= n_q <= max_query_len, n_q <= context_lens[s] <=
// max_context_len, and the block table covers every context position. The kernels do not
// check it.
// Sequence s owns query rows [query_start[s], query_start[s + 1]); its context has
// context_lens[s] tokens, the last n_q of which are its queries, so query row j of s sits at
// position context_lens[s] - n_q + j and sees keys in (pos - sliding_window, pos] (all of
// [0, pos] without a window).
struct PagedAttentionArgs {
  const void* q = nullptr;        // [num_tokens, num_heads, head_dim], dtype
  // K: [num_blocks, block_size, num_kv_heads, head_dim] of dtype, or of fp8 e4m3 when fp8_kv:
  // an element is then its code's value times its row's scale, k_scale / v_scale
  // [num_blocks, block_size, num_kv_heads] (kernels/cuda/ops.h LaunchWriteKv). V likewise with
  // v_head_dim; or, when v_in_k, not stored (v_cache and v_scale unused): a token's V is the
  // first v_head_dim values of its K row, scaled by the K row's scale (multi-head latent
  // attention, whose cache holds one latent row per token).
  const void* k_cache = nullptr;
  const void* v_cache = nullptr;
  bool fp8_kv = false;
  const float* k_scale = nullptr;
  const float* v_scale = nullptr;
  void* out = nullptr;            // [num_tokens, num_heads, v_head_dim], dtype
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  const int32_t* query_start = nullptr;   // [num_seqs + 1]
  const int32_t* context_lens = nullptr;  // [num_seqs]
  int64_t num_seqs = 0;
  int64_t max_blocks_per_seq = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t v_head_dim = 0;  // 0: head_dim; else in [1, head_dim]
  bool v_in_k = false;
  int64_t block_size = 0;
  // Host-side bounds that size the grids (a tighter bound launches fewer empty blocks).
  int64_t max_query_len = 0;    // >= every sequence's n_q
  int64_t max_context_len = 0;  // >= every context_lens[s]
  int64_t max_tokens = 0;       // > 0: >= the launch's query tokens (else num_seqs * max_query_len)
  float scale = 1.0f;           // on q.k
  float softcap = 0.0f;         // > 0: scores = softcap * tanh(scores / softcap)
  int64_t sliding_window = 0;   // > 0: the window (keys in (pos - window, pos])
  // Prefill on the Hopper kernel where one fits (LaunchPagedAttention; sm_90 only, else the
  // portable kernel runs). It reads the cache through tensor maps, which need `num_blocks`,
  // the cache's blocks.
  bool hopper = false;
  int64_t num_blocks = 0;
  // Device scratch of at least AttentionWorkspaceBytes(...) for the decode splits.
  void* workspace = nullptr;
  int64_t workspace_bytes = 0;
};

// The key ranges of a decode query that sees `span` keys: `splits` ranges of `chunk` keys (the
// last may be shorter): one range up to kDecodeMinSplitKeys keys, then ceil(span / 256) ranges
// (at most kDecodeMaxSplits) of equal length rounded up to a multiple of 32, so a split has at
// least 128 keys. A pure function of the span: the same sequence is split
// the same way whatever else the step holds.
struct DecodeSplitInfo {
  int32_t splits = 1;
  int32_t chunk = 32;
};
inline constexpr int32_t kDecodeMinSplitKeys = 256;
inline constexpr int32_t kDecodeMaxSplits = 32;
// An upper bound of DecodeSplit(span).splits for every span <= max_span.
STRATA_HOST_DEVICE inline int32_t DecodeMaxSplits(int64_t max_span) {
  const int64_t splits = (max_span + kDecodeMinSplitKeys - 1) / kDecodeMinSplitKeys;
  return splits < 1 ? 1 : (splits > kDecodeMaxSplits ? kDecodeMaxSplits
                                                     : static_cast<int32_t>(splits));
}
STRATA_HOST_DEVICE inline DecodeSplitInfo DecodeSplit(int32_t span) {
  if (span <= 0) return {0, 32};
  const int32_t most = DecodeMaxSplits(span);
  const int32_t chunk = ((span + most - 1) / most + 31) / 32 * 32;
  return {(span + chunk - 1) / chunk, chunk};
}

// The Hopper prefill kernel's key tile, and the cache block sizes it loads: whole blocks of a
// multiple of 8 rows that tile a key tile, or tiles inside larger blocks.
inline constexpr int32_t kHopperKeys = 128;
STRATA_HOST_DEVICE inline bool HopperPrefillFits(int64_t block_size) {
  return block_size >= 8 && block_size % 8 == 0 &&
         (kHopperKeys % block_size == 0 || block_size % kHopperKeys == 0);
}

// The compute capability of CUDA device `device` as major * 10 + minor (90 for Hopper), or 0
// if it cannot be read.
int ComputeCapability(int device);

// Whether this build has the Hopper prefill kernel's code (CMAKE_CUDA_ARCHITECTURES names
// 90a); without it the registry takes no Hopper row.
bool HopperPrefillBuilt();

// Bytes of workspace the decode kernel needs for `num_seqs` sequences of at most
// `max_context_len` tokens (the split partials: f32 outputs, maxima and sums) with this K/V
// layout (v_head_dim and v_in_k as in PagedAttentionArgs); 0 where the registry's kernel does
// not split: a head dim without a tuned decode instance, or a latent layout (V inside K, or
// narrower than K), both of which the generic kernel takes.
int64_t AttentionWorkspaceBytes(int64_t num_seqs, int64_t num_heads, int64_t head_dim,
                                int64_t max_context_len, int64_t v_head_dim = 0,
                                bool v_in_k = false);

// A registered kernel instance.
using AttentionLaunchFn = absl::Status (*)(const PagedAttentionArgs& args, void* stream);
struct AttentionKernel {
  const char* name;  // e.g. "prefill_d128_bf16"
  AttentionKind kind;
  int64_t head_dim;      // 0: any up to max_head_dim, both kinds (a generic kernel)
  int64_t max_head_dim;  // head_dim for a tuned kernel
  AttentionDType dtype;
  bool sliding_window;  // supports a window
  bool softcap;         // supports a soft cap
  bool fp8_kv;          // reads an fp8 cache (else one of `dtype`)
  bool latent;          // supports v_head_dim < head_dim and V inside K
  int sm;               // 0: any device; 90: compute capability 9.0 only, and only if asked
  AttentionLaunchFn launch;
};

// The kernel for `desc`, or NotFound/InvalidArgument naming what no kernel supports (a head
// dim, a dtype, an fp8 cache beside fp16, non-causal or contiguous attention, v_head_dim above
// head_dim). A tuned instance where one matches (for prefill the Hopper one first, where asked
// and it fits), else the smallest generic kernel that covers the head dim.
absl::StatusOr<const AttentionKernel*> FindAttentionKernel(const AttentionDesc& desc);

// Checks args (pointers, shapes, head counts, workspace) once, at the API edge.
absl::Status ValidateAttentionArgs(const PagedAttentionArgs& args);

// Attention of a whole step: sequences with one query token go to the decode kernel, the others
// to the prefill kernel (each kernel skips the other's sequences), both from the registry.
// Asynchronous on `stream`; the Status covers validation, kernel lookup and launch errors.
absl::Status LaunchPagedAttention(const PagedAttentionArgs& args, AttentionDType dtype,
                                  void* stream);

}  // namespace strata::kernels::cuda

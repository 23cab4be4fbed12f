// CUDA element-wise operators of the decoder behind plain parameter structs. This header has no
// CUDA types, so host code may include it: device pointers are raw (`void*` for activations,
// whose element type is `elem`), streams are `void*` (a cudaStream_t, nullptr for the default
// stream). Launches are asynchronous on that stream; the returned Status covers argument
// validation and launch errors only. Arithmetic is f32 whatever the element type; results are
// rounded once, on store.
#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace strata::kernels::cuda {

// Element types of activations.
enum class Elem : uint8_t { kF32, kBf16 };

// Normalisation of each row, optionally after a fused residual add:
//   if delta: x += delta (x is the residual stream, updated in place)
//   RMSNorm:   y = x / sqrt(mean(x^2) + eps) * w
//   LayerNorm: y = (x - mean(x)) / sqrt(var(x) + eps) * w (+ b)
struct NormParams {
  void* x = nullptr;             // [rows, dim], elem
  const void* delta = nullptr;   // [rows, dim], elem, or null
  const float* weight = nullptr;  // [dim]
  const float* bias = nullptr;    // [dim], LayerNorm only, or null
  void* y = nullptr;             // [rows, dim], elem; may be x
  int64_t rows = 0;
  int64_t dim = 0;
  float eps = 1e-5f;
  bool layer_norm = false;
  Elem elem = Elem::kF32;
};
absl::Status LaunchNorm(const NormParams& params, void* stream);

// Rotates the first rotary_dim dims of every head in place, as cpu::ApplyRope: the angle of
// pair i at position p is p * inv_freq[i] in f32, cos/sin (accurate, not fast-math) scaled by
// mscale. With a long table, tokens of a sequence whose context exceeds long_threshold use
// long_inv_freq and long_mscale (chosen per sequence).
struct RopeParams {
  void* x = nullptr;                      // [num_tokens, num_heads, head_dim], elem
  const int32_t* positions = nullptr;     // [num_tokens]
  const float* inv_freq = nullptr;        // [rotary_dim / 2]
  const float* long_inv_freq = nullptr;   // [rotary_dim / 2], or null
  const int32_t* token_seq = nullptr;     // [num_tokens] (with a long table)
  const int32_t* context_lens = nullptr;  // [num_seqs] (with a long table)
  int64_t long_threshold = 0;
  float mscale = 1.0f;
  float long_mscale = 1.0f;
  int64_t num_tokens = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  int64_t rotary_dim = 0;
  bool interleaved = false;  // false: pairs (i, i + rotary_dim/2) (HF); true: (2i, 2i + 1)
  Elem elem = Elem::kF32;
};
absl::Status LaunchRope(const RopeParams& params, void* stream);

enum class Act : uint8_t {
  kSilu,      // x * sigmoid(x)
  kGeluTanh,  // x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
  kGeluErf,   // x/2 * (1 + erf(x / sqrt 2))
};

// out[i] = act(gate[i]) * up[i].   out may alias gate.
struct GatedActParams {
  const void* gate = nullptr;  // [n], elem
  const void* up = nullptr;    // [n], elem
  void* out = nullptr;         // [n], elem
  int64_t n = 0;
  Act act = Act::kSilu;
  Elem elem = Elem::kF32;
};
absl::Status LaunchGatedAct(const GatedActParams& params, void* stream);

// Element-wise updates of x in place ([n], elem):
//   kAct: x = act(x);  kAdd: x += y;  kSoftcap: x = cap * tanh(x / cap);
//   kBias: x[r, c] += bias[c] for rows of `cols` values (bias f32).
struct UpdateParams {
  enum class Op : uint8_t { kAct, kAdd, kSoftcap, kBias };
  Op op = Op::kAdd;
  void* x = nullptr;
  const void* y = nullptr;       // kAdd: [n], elem
  const float* bias = nullptr;   // kBias: [cols]
  int64_t n = 0;
  int64_t cols = 0;              // kBias
  float cap = 0.0f;              // kSoftcap
  Act act = Act::kSilu;          // kAct
  Elem elem = Elem::kF32;
};
absl::Status LaunchUpdate(const UpdateParams& params, void* stream);

// dst[i] = src[i] converted between element types (rounded to nearest even for bf16).
struct ConvertParams {
  const void* src = nullptr;
  Elem src_elem = Elem::kF32;
  void* dst = nullptr;
  Elem dst_elem = Elem::kBf16;
  int64_t n = 0;
};
absl::Status LaunchConvert(const ConvertParams& params, void* stream);

// out[i, :] = table[tokens[i] - vocab_begin, :] * scale for tokens inside this slice of the
// vocabulary, zeros for the others.
struct EmbeddingParams {
  const int32_t* tokens = nullptr;  // [num_tokens]
  const void* table = nullptr;      // [table_rows, dim], bf16
  void* out = nullptr;              // [num_tokens, dim], elem
  int64_t num_tokens = 0;
  int64_t table_rows = 0;
  int64_t dim = 0;
  int64_t vocab_begin = 0;
  float scale = 1.0f;
  Elem elem = Elem::kF32;
};
absl::Status LaunchEmbedding(const EmbeddingParams& params, void* stream);

// dst[i, :] = src[rows[i], :] for rows of row_bytes bytes (a multiple of 2).
struct GatherRowsParams {
  const void* src = nullptr;
  void* dst = nullptr;
  const int32_t* rows = nullptr;  // [num_rows]
  int64_t num_rows = 0;
  int64_t row_bytes = 0;
};
absl::Status LaunchGatherRows(const GatherRowsParams& params, void* stream);

// ---- Mixture of experts, on the device (no host round trip, so a step can be recorded) ----
//
// A layer runs LaunchMoeRoute, then LaunchMoePlan, LaunchMoeMatMul twice (gate and up with the
// activation, then down) and LaunchMoeCombine. Every token's result depends on its own row
// only: its experts' products have one reduction order whatever rows share them, and its sum
// runs in expert-id order.

// Routing, as the CPU backend's RouteExperts: per token, softmax (over all experts) or sigmoid
// scores; `correction_bias` added for choosing only; grouped routing keeps the topk_groups
// groups of best score (a group's best expert for softmax, its best two summed for sigmoid);
// then the top_k experts by descending score, lower id first on ties; weights are the scores,
// renormalised to sum to 1 when asked, times routed_scale. A token whose scores are all NaN gets
// ids of -1 (no expert) and weight 0.
inline constexpr int kMaxMoeTopK = 32;
struct MoeRouteParams {
  const float* logits = nullptr;           // [num_tokens, num_experts]
  const float* correction_bias = nullptr;  // [num_experts] or null
  int32_t* ids = nullptr;                  // [num_tokens, top_k]
  float* weights = nullptr;                // [num_tokens, top_k]
  int64_t num_tokens = 0;
  int64_t num_experts = 0;
  int64_t top_k = 0;        // in [1, kMaxMoeTopK]
  int64_t num_groups = 1;   // divides num_experts
  int64_t topk_groups = 1;  // groups kept: at least top_k experts in them
  bool sigmoid = false;
  bool renormalize = false;
  float routed_scale = 1.0f;
};
absl::Status LaunchMoeRoute(const MoeRouteParams& params, void* stream);

// Where each routed (token, expert) slot goes: the slots of local expert e (global id
// expert_begin + e) take positions offsets[e] .. offsets[e + 1] - 1; rows[p] is the token of
// position p and positions[s] the position of slot s (-1 for an expert this rank lacks). The
// order inside an expert is whatever the atomics give: no result depends on it. And the
// matmuls' work list: tiles [t] = (local expert, first position of the pass) for every pass of
// kMoeTileRows positions of every expert, expert after expert, and chunk_tiles[c] the first
// tile of launch chunk c (experts c * kMaxMoeLaunchExperts onwards; one more entry: the end).
inline constexpr int kMoeTileRows = 64;
inline constexpr int kMaxMoeLaunchExperts = 256;
// The most tiles (and entries of `tiles`, two int32 each) a plan of these sizes writes: a
// pass per 64 positions, and one part-filled pass per expert that got any.
inline int64_t MoeMaxTiles(int64_t num_slots, int64_t num_local) {
  return (num_slots + kMoeTileRows - 1) / kMoeTileRows +
         (num_local < num_slots ? num_local : num_slots);
}
inline int64_t MoeChunks(int64_t num_local) {
  return (num_local + kMaxMoeLaunchExperts - 1) / kMaxMoeLaunchExperts;
}
struct MoePlanParams {
  const int32_t* ids = nullptr;    // [num_slots] = [num_tokens, top_k]
  int32_t* offsets = nullptr;      // [num_local + 1]
  int32_t* rows = nullptr;         // [num_slots]
  int32_t* positions = nullptr;    // [num_slots]
  int32_t* tiles = nullptr;        // [MoeMaxTiles][2]
  int32_t* chunk_tiles = nullptr;  // [MoeChunks + 1]
  int64_t num_slots = 0;
  int64_t top_k = 0;
  int64_t expert_begin = 0;
  int64_t num_local = 0;
};
absl::Status LaunchMoePlan(const MoePlanParams& params, void* stream);

// Each expert's product over its positions, for the experts first .. first + num_experts - 1
// (a whole launch chunk of the plan: first a multiple of kMaxMoeLaunchExperts, num_experts
// all the chunk's experts, min(256, local - first)): position p of
// expert e reads row a_rows[p] of `a` (row p when a_rows is null), rounded to bf16, and gets
// out[p, :] = a_row . W_e^T with f32 accumulation, W_e bf16 [n, k] (k a multiple of 8, 16-byte
// aligned rows). Gated: out[p, :] = act(round(a_row . gate_e^T)) * round(a_row . up_e^T), the
// products rounded to out_elem first, as a separate activation op would see them. A block
// takes one tile of the plan (a pass of up to kMoeTileRows positions) by 64 columns; every
// element sums k in the same order whatever else the tile holds.
struct MoeMatMulParams {
  const void* a = nullptr;               // [*, k], a_elem
  const int32_t* a_rows = nullptr;       // [positions] or null
  const int32_t* offsets = nullptr;      // the plan's
  const int32_t* tiles = nullptr;        // the plan's
  const int32_t* chunk_tiles = nullptr;  // the plan's
  const void* w[kMaxMoeLaunchExperts] = {};     // bf16 [n, k]: down, or gate when gated
  const void* up[kMaxMoeLaunchExperts] = {};    // bf16 [n, k], when gated
  void* out = nullptr;                          // [positions, n], out_elem
  int64_t num_slots = 0;  // the plan's (bounds its tiles)
  int64_t first = 0;
  int64_t num_experts = 0;
  int64_t n = 0;
  int64_t k = 0;
  bool gated = false;
  Act act = Act::kSilu;
  Elem a_elem = Elem::kF32;
  Elem out_elem = Elem::kF32;
};
absl::Status LaunchMoeMatMul(const MoeMatMulParams& params, void* stream);

// y[t, :] = sum of weights[s] * products[positions[s], :] over token t's slots s of local
// experts, in expert-id order, in f32 (zeros for a token routed to none of them); rounded once.
struct MoeCombineParams {
  const float* products = nullptr;   // [positions, cols]
  const int32_t* ids = nullptr;      // [num_tokens, top_k]
  const float* weights = nullptr;    // [num_tokens, top_k]
  const int32_t* positions = nullptr;  // the plan's
  void* y = nullptr;                 // [num_tokens, cols], elem
  int64_t num_tokens = 0;
  int64_t top_k = 0;  // in [1, kMaxMoeTopK]
  int64_t cols = 0;
  Elem elem = Elem::kF32;
};
absl::Status LaunchMoeCombine(const MoeCombineParams& params, void* stream);

// Stores token t's K (and V) at cache slot slot_mapping[t] of a paged cache
// [num_blocks, block_size, num_kv_heads, head_dim]; slot = block * block_size + offset. A bf16
// cache gets each value rounded; an fp8 cache gets each (token, KV head) row as e4m3 codes of
// value / scale with scale = amax / 448 (the row's largest magnitude maps to e4m3's largest
// finite value; 1 for a row of zeros), rounded to nearest even and saturated, and the scale in
// k_scale / v_scale [num_blocks, block_size, num_kv_heads] (f32), so a value reads back as
// code * scale.
struct WriteKvParams {
  const void* k = nullptr;              // [num_tokens, num_kv_heads, head_dim], elem
  const void* v = nullptr;              // [num_tokens, num_kv_heads, v_head_dim], elem
  void* k_cache = nullptr;              // bf16, or fp8 codes
  void* v_cache = nullptr;              // likewise, or null when the cache stores no V
  const int32_t* slot_mapping = nullptr;  // [num_tokens]; a negative slot stores nothing (padding)
  int64_t num_tokens = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t v_head_dim = 0;
  Elem elem = Elem::kF32;
  bool fp8 = false;          // the cache holds fp8 e4m3 codes
  float* k_scale = nullptr;  // fp8 only
  float* v_scale = nullptr;  // fp8 only (with V)
};
absl::Status LaunchWriteKv(const WriteKvParams& params, void* stream);

}  // namespace strata::kernels::cuda

namespace strata::kernels::cuda {

// The logits processors of worker/sampling/sampler.cc (ApplyLogitsProcessors), in place on
// rows of f32 logits: logit bias, then the repetition penalty on every id the sequence has
// seen, then the frequency and presence penalties on every id of its output, each stage after
// the previous one, with the host's float operations rounded one by one (no fused
// multiply-add), so an edited row equals the host's bit for bit. Entries are (id, value) pairs
// in [begin, end) ranges of `ids` / `values`:
//   bias:    value = the bias; an id may repeat (its biases add in list order: the host packs
//            a repeated id's entries next to each other, in that order);
//   seen:    value unused; ids unique (the history's set);
//   counted: value = the id's count in the output as a float; ids unique.
// Every id must be in [0, vocab) (the host drops others, as its processors do).
struct LogitsEditRow {
  int32_t row = 0;  // the logits row edited
  int32_t bias_begin = 0, bias_end = 0;
  int32_t seen_begin = 0, seen_end = 0;
  int32_t counted_begin = 0, counted_end = 0;
  float repetition_penalty = 1.0f;  // 1: off
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
};
struct LogitsEditParams {
  float* logits = nullptr;              // [logit rows, vocab]
  const LogitsEditRow* rows = nullptr;  // [num_rows], device memory
  const int32_t* ids = nullptr;         // device memory
  const float* values = nullptr;        // device memory, parallel to ids
  int64_t num_rows = 0;
  int64_t vocab = 0;
};
absl::Status LaunchLogitsEdit(const LogitsEditParams& params, void* stream);

// Greedy choice per row of f32 logits: the lowest id of the largest value (the CPU's Argmax),
// or `non_finite` for a row that is not a distribution (a NaN or +inf anywhere, or nothing
// finite).
struct GreedyParams {
  const float* logits = nullptr;  // [rows, vocab]
  int32_t* tokens = nullptr;      // [rows]
  int64_t rows = 0;
  int64_t vocab = 0;
  int32_t non_finite = -1;
};
absl::Status LaunchGreedy(const GreedyParams& params, void* stream);

// One row sampled as the host sampler samples it (worker/sampling/sampler.cc: temperature, then
// top-k, then top-p of the distribution after top-k, then min-p; candidates ordered by logit,
// lowest id first on ties, or by id without top-k and top-p; the draw is the first candidate
// whose running mass exceeds u times the candidates' mass, else the last candidate). The
// uniform u comes from the host (PhiloxUniform(seed, stream, position)), so a seeded request
// draws the same numbers on either device. Masses are summed as fixed-point integers (exact in
// any order: the same token on every run and in every batch), not as the host's doubles, so a
// draw within rounding of a boundary may land on the neighbouring token, and a token under
// 2^-45 of the top token's probability (at a 128k vocabulary) is never drawn. Logit bias and
// penalties are applied before (LaunchLogitsEdit), logprobs after (LaunchLogprobs).
struct SampleRowParams {
  int32_t row = 0;      // the logits row; its token goes to tokens[row]
  float inv_t = 1.0f;   // 1 / temperature, > 0
  int32_t top_k = 0;    // 0: off
  float top_p = 1.0f;   // in (0, 1]; 1: off
  float min_p = 0.0f;   // in [0, 1]; 0: off
  double u = 0.0;       // in [0, 1)
};
struct SampleParams {
  const float* logits = nullptr;          // [logit rows, vocab]
  const SampleRowParams* rows = nullptr;  // [num_rows], device memory
  int32_t* tokens = nullptr;              // [logit rows]
  int64_t num_rows = 0;
  int64_t vocab = 0;
  int32_t non_finite = -1;                // the token of a row that is not a distribution
};
absl::Status LaunchSample(const SampleParams& params, void* stream);

// The logprobs the host reports (worker/sampling/sampler.cc ComputeLogprobs) of rows of raw f32
// logits that are distributions: log Z = max + log(sum exp(l - max)) (the sum in double, in a
// fixed order: the same bits in every batch, within an ulp or so of the host's sequential
// sum), the sampled token's logit - log Z, and the top_n most likely ids (logit descending,
// lowest id first on ties) with theirs.
inline constexpr int kMaxTopLogprobs = 20;
struct LogprobRowParams {
  int32_t row = 0;       // the logits row
  int32_t token_at = 0;  // where its sampled token is in `tokens`
  int32_t top_n = 0;     // in [0, kMaxTopLogprobs]
};
struct LogprobsOut {
  float logprob;
  int32_t top_ids[kMaxTopLogprobs];
  float top_logprobs[kMaxTopLogprobs];
};
struct LogprobsParams {
  const float* logits = nullptr;            // [logit rows, vocab]
  const LogprobRowParams* rows = nullptr;   // [num_rows], device memory
  const int32_t* tokens = nullptr;          // device memory
  LogprobsOut* out = nullptr;               // [num_rows], device memory
  int64_t num_rows = 0;
  int64_t vocab = 0;
};
absl::Status LaunchLogprobs(const LogprobsParams& params, void* stream);

}  // namespace strata::kernels::cuda

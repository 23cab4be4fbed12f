// CPU operators of the decoder. fp32 activations; weights in f32/f16/bf16/q8_0/q4_0 used in
// place (from the mmap'ed model). Each op is a plain function over pointers and sizes; shapes
// are in the comments. Every op has a scalar reference (reference_ops.h) and vectorised paths
// (AVX2, AVX-512) chosen at run time by the CPU's features; tests check each path against the
// reference.
#pragma once

#include <cstdint>

#include "absl/types/span.h"
#include "common/rope_layout.h"
#include "common/tensor.h"
#include "common/thread_pool.h"

namespace strata::kernels::cpu {

// y[m, n] = x[m, k] · w[n, k]^T.  `w` is a [n, k] view (row stride honoured) of any weight dtype.
// For q8_0/q4_0 weights, x is quantized to q8_0 blocks per row first and the dot products run
// in integers (as llama.cpp does); other dtypes are converted to f32 and accumulated in f32.
void MatMul(const float* x,       // [m, k]
            int64_t m, const TensorView& w,
            float* y,             // [m, n]
            ThreadPool& pool);

// Several matmuls that share x (the q/k/v projections, gate/up): ys[i] = x · ws[i]^T as one
// parallel loop, with one activation quantization for q8_0/q4_0. Every weight must have the
// same k and dtype.   ys[i]: [m, ws[i]->Rows()]
void MatMulGroup(const float* x,  // [m, k]
                 int64_t m, absl::Span<const TensorView* const> ws,
                 absl::Span<float* const> ys, ThreadPool& pool);

// out[i, :] = table[tokens[i], :] converted to f32.  table: [vocab, dim]; tokens must be in
// range (validated by the caller).
void EmbeddingLookup(const TensorView& table, const int32_t* tokens, int64_t num_tokens,
                     float* out);  // [num_tokens, dim]

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w.   x, y: [rows, dim]; w: [dim]. y may be x.
void RmsNorm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y);

// Rotates the first `rotary_dim` dims of every head in place.
//   x: [num_tokens, num_heads, head_dim]; positions: [num_tokens]; inv_freq: [rotary_dim / 2]
// Angle for pair i at position p: p * inv_freq[i]; cos/sin are multiplied by `mscale`.
void ApplyRope(float* x, int64_t num_tokens, int64_t num_heads, int64_t head_dim,
               const int32_t* positions, const float* inv_freq, int64_t rotary_dim,
               RopeLayout layout, float mscale = 1.0f);

// out[i] = silu(gate[i]) * up[i] for i in [0, n).   out may alias gate.
void SiluMul(const float* gate, const float* up, int64_t n, float* out);

// GELU, exact (x/2 * (1 + erf(x / sqrt 2))) or with the tanh approximation
// (x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))), computed in f32.
float Gelu(float x, bool tanh_approximation);
// out[i] = gelu(gate[i]) * up[i].   out may alias gate.
void GeluMul(const float* gate, const float* up, int64_t n, bool tanh_approximation, float* out);
// x[i] = gelu(x[i]) (or silu when `silu`), in place.
void GeluInPlace(float* x, int64_t n, bool tanh_approximation);
void SiluInPlace(float* x, int64_t n);

// y[r, :] = (x[r, :] - mean) / sqrt(var + eps) * w + b (b may be null).   y may be x.
void LayerNorm(const float* x, const float* w, const float* b, int64_t rows, int64_t dim,
               float eps, float* y);

// y[r, :] += bias for every row.   y: [rows, n]; bias: [n]
void AddBias(float* y, const float* bias, int64_t rows, int64_t n);

// x[i] = cap * tanh(x[i] / cap).
void Softcap(float* x, int64_t n, float cap);

// x[i] += y[i].
void AddInPlace(float* x, const float* y, int64_t n);

// One layer of the paged KV cache, fp32.
//   k: [num_blocks, block_size, num_kv_heads, head_dim]
//   v: [num_blocks, block_size, num_kv_heads, v_head_dim], or (latent attention) v == k: each
//      token's V is the first v_head_dim values of its K row.
struct PagedKv {
  float* k = nullptr;
  float* v = nullptr;
  int64_t num_blocks = 0;
  int64_t block_size = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t v_head_dim = 0;  // 0: head_dim

  int64_t VDim() const { return v_head_dim > 0 ? v_head_dim : head_dim; }
  int64_t KRow() const { return num_kv_heads * head_dim; }  // floats per token of k
  // Floats per token of v, and between KV heads of one token's v.
  int64_t VRow() const { return v == k ? KRow() : num_kv_heads * VDim(); }
  int64_t VHeadStride() const { return v == k ? head_dim : VDim(); }
};

// Stores token t's K and V at cache slot slot_mapping[t] (slot = block * block_size + offset);
// V only when the cache stores it (v != k).
void WriteKv(const PagedKv& cache,
             const float* k,              // [num_tokens, num_kv_heads, head_dim]
             const float* v,              // [num_tokens, num_kv_heads, v_head_dim]
             const int32_t* slot_mapping,  // [num_tokens]
             int64_t num_tokens);

struct AttentionParams {
  int64_t num_heads = 0;     // query heads; head h reads KV head h / (num_heads / num_kv_heads)
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;      // of q and k; v's comes from the cache
  float scale = 1.0f;        // applied to q·k
  float softcap = 0.0f;      // > 0: scores = softcap * tanh(scores / softcap)
  int64_t sliding_window = 0;  // > 0: a query at position p sees keys in (p - window, p]
};

// Causal attention of a batch of sequences over the paged cache, which already holds the K/V
// of every query token. Sequence s owns query rows [query_start[s], query_start[s + 1]); its
// context has context_lens[s] tokens, the last (query_start[s+1] - query_start[s]) of which
// are its queries, so query row j of s sits at position context_lens[s] - n_q + j.
void PagedAttention(const float* q,              // [num_tokens, num_heads, head_dim]
                    const PagedKv& cache,
                    const int32_t* block_tables,  // [num_seqs, max_blocks_per_seq]
                    int64_t max_blocks_per_seq,
                    const int32_t* query_start,   // [num_seqs + 1]
                    const int32_t* context_lens,  // [num_seqs]
                    int64_t num_seqs, const AttentionParams& params,
                    float* out,                   // [num_tokens, num_heads, v_head_dim]
                    ThreadPool& pool);

// Names the instruction-set path the dispatcher picked ("avx512", "avx2" or "scalar").
const char* ActiveIsa();

}  // namespace strata::kernels::cpu

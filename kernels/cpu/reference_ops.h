// Scalar reference implementations of every op in ops.h: straightforward loops in the order a
// reader would write them, used as the oracle in tests (tests/kernels/cpu_ops_test.cc). Not
// tuned; do not call them on hot paths.
#pragma once

#include <cstdint>

#include "common/tensor.h"
#include "kernels/cpu/ops.h"

namespace strata::kernels::cpu::reference {

// As cpu::MatMul, single-threaded. q8_0/q4_0 weights: each row of x is quantized with
// QuantizeRow(kQ8_0), each 32-block dot product is computed in integers, scaled by
// d_w * d_x and accumulated in f32, block by block.
void MatMul(const float* x,  // [m, k]
            int64_t m, const TensorView& w,
            float* y);       // [m, n]

void EmbeddingLookup(const TensorView& table, const int32_t* tokens, int64_t num_tokens,
                     float* out);  // [num_tokens, dim]

void RmsNorm(const float* x,  // [rows, dim]
             const float* w,  // [dim]
             int64_t rows, int64_t dim, float eps,
             float* y);       // [rows, dim]

void ApplyRope(float* x,  // [num_tokens, num_heads, head_dim]
               int64_t num_tokens, int64_t num_heads, int64_t head_dim,
               const int32_t* positions,  // [num_tokens]
               const float* inv_freq,     // [rotary_dim / 2]
               int64_t rotary_dim, RopeLayout layout, float mscale = 1.0f);

void SiluMul(const float* gate, const float* up, int64_t n, float* out);  // all [n]

void AddInPlace(float* x, const float* y, int64_t n);  // both [n]

void WriteKv(const PagedKv& cache,
             const float* k,               // [num_tokens, num_kv_heads, head_dim]
             const float* v,               // [num_tokens, num_kv_heads, head_dim]
             const int32_t* slot_mapping,  // [num_tokens]
             int64_t num_tokens);

// As cpu::PagedAttention, single-threaded, with a plain two-pass softmax in f32.
void PagedAttention(const float* q,  // [num_tokens, num_heads, head_dim]
                    const PagedKv& cache,
                    const int32_t* block_tables,  // [num_seqs, max_blocks_per_seq]
                    int64_t max_blocks_per_seq,
                    const int32_t* query_start,   // [num_seqs + 1]
                    const int32_t* context_lens,  // [num_seqs]
                    int64_t num_seqs, const AttentionParams& params,
                    float* out);                  // [num_tokens, num_heads, head_dim]

}  // namespace strata::kernels::cpu::reference

// Internal: the per-instruction-set kernel tables behind the public ops (ops.h).
//
// Each ISA translation unit (kernels_scalar.cc, kernels_avx2.cc, kernels_avx512.cc) is compiled
// with its own -m flags and fills one IsaKernels table from the shared templates in
// kernels_impl.h. The dispatcher picks the best table the CPU supports once, at first use;
// tests and benchmarks may force another supported table with SetIsaForTesting.
//
// Nothing here includes intrinsics, so this header is safe in any translation unit.
#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace strata::kernels::cpu {

enum class Isa : uint8_t { kScalar, kAvx2, kAvx512 };

inline constexpr Isa kAllIsas[] = {Isa::kScalar, Isa::kAvx2, Isa::kAvx512};

// One block of a float-weight matmul: y[i, j] = x[i, :] · w[j, :] for i in [0, m), j in
// [n_begin, n_end). Weights are f32, f16 or bf16.
struct GemmArgs {
  const float* x = nullptr;      // [m, k], rows ldx floats apart
  int64_t ldx = 0;
  int64_t m = 0;
  const std::byte* w = nullptr;  // [n, k] of `dtype`, rows w_stride bytes apart
  int64_t w_stride = 0;
  DType dtype = DType::kF32;
  int64_t n_begin = 0;
  int64_t n_end = 0;
  int64_t k = 0;
  float* y = nullptr;            // [m, n], rows ldy floats apart
  int64_t ldy = 0;
};

// One block of a quantized matmul: weights q8_0 or q4_0 against activations already quantized
// to q8_0 (xq) whose block scales are also given as f32 (xd, F16ToF32 of each block's d).
// The product of each 32-block is computed exactly in int32 and scaled by d_w * d_x in f32.
struct QGemmArgs {
  const BlockQ8_0* xq = nullptr;  // [m, k / 32] blocks
  const float* xd = nullptr;      // [m, k / 32]
  // q4_0 only: -8 * (sum of each aligned group of 4 activations) per block, so that a dot of
  // the raw nibbles (0..15) with x plus this term is the dot of (nibble - 8) with x.
  const int32_t* xcorr = nullptr;  // [m, k / 32, 8]
  int64_t m = 0;
  const std::byte* w = nullptr;   // [n, k / 32] blocks of `dtype`, rows w_stride bytes apart
  int64_t w_stride = 0;
  DType dtype = DType::kQ8_0;
  int64_t n_begin = 0;
  int64_t n_end = 0;
  int64_t k_blocks = 0;
  float* y = nullptr;             // [m, n], rows ldy floats apart
  int64_t ldy = 0;
};

// Kernels one ISA provides. All pointers are non-null in a complete table.
struct IsaKernels {
  const char* name;
  void (*gemm)(const GemmArgs& args);
  void (*qgemm)(const QGemmArgs& args);
  // QuantizeRow(kQ8_0, x, out, k), bit for bit; k a multiple of 32.
  void (*quantize_q8)(const float* x, int64_t k, BlockQ8_0* out);
  // sum_i a[i] * b[i]
  float (*dot)(const float* a, const float* b, int64_t n);
  // y[i] += a * x[i]
  void (*axpy)(float a, const float* x, float* y, int64_t n);
  // x[i] *= a
  void (*scale)(float a, float* x, int64_t n);
  // sum_i x[i] * x[i]
  float (*sum_squares)(const float* x, int64_t n);
  // y[i] = x[i] * s * w[i]   (y may be x)
  void (*scale_mul)(const float* x, float s, const float* w, int64_t n, float* y);
  // x[i] += y[i]
  void (*add)(float* x, const float* y, int64_t n);
  // out[i] = silu(gate[i]) * up[i]   (out may be gate)
  void (*silu_mul)(const float* gate, const float* up, int64_t n, float* out);
  // Streams n floats (n a multiple of 64, p 64-byte aligned) and returns their sum.
  float (*read_sum)(const float* p, int64_t n);
};

// Tables compiled into this binary; nullptr when the ISA was not compiled in (non-x86 hosts).
const IsaKernels* ScalarKernels();
const IsaKernels* Avx2Kernels();
const IsaKernels* Avx512Kernels();

const char* IsaName(Isa isa);
// True when the ISA is compiled in and this CPU (and OS) can run it.
bool IsaSupported(Isa isa);
// The table in use (the best supported one unless STRATA_CPU_ISA or SetIsaForTesting said
// otherwise).
const IsaKernels& ActiveKernels();
// Forces `isa` (must be supported) for every later op in the process. Not thread-safe with
// concurrently running ops; meant for tests and benchmarks.
void SetIsaForTesting(Isa isa);

}  // namespace strata::kernels::cpu

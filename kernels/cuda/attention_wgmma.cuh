// Hopper (sm_90a) building blocks of the Hopper prefill kernel (attention_hopper.cuh):
// transaction barriers (mbarrier), tensor memory access (TMA, cp.async.bulk.tensor) and
// warpgroup matrix multiplies (wgmma.mma_async) on shared-memory descriptors. Everything here
// assembles only for sm_90a; callers compile it under __CUDA_ARCH_FEAT_SM90_ALL.
//
// Shared-memory operands use the 128-byte swizzle (TMA's CU_TENSOR_MAP_SWIZZLE_128B and the
// descriptor's layout type 1): a tile is stored as panels of 64 16-bit columns, each a run of
// 128-byte rows, and the 16-byte chunk c of row r sits at chunk c ^ (r % 8) of its row (the
// XOR takes address bits 7-9, so panels start at multiples of 1024 bytes). PTX ISA, "Matrix
// Descriptor Format" and "Shared Memory Matrix Layout":
//   * K-major (A = Q, B = K: the reduction dim contiguous): 8-row core groups 1024 bytes apart
//     (the stride byte offset); the leading byte offset is unused; the k16 slice kk of a panel
//     starts 32 * kk bytes into it.
//   * MN-major (B = V for P.V, transposed: the output dim contiguous): 8 rows of the reduction
//     dim per 1024-byte group (stride byte offset 1024); the next 64 output columns (the next
//     panel) a leading byte offset further.
// Accumulators of m64nNk16 (f32): warp w of the warpgroup holds rows 16w..16w+15; in its n8
// tile j, lane l holds d[j][0..1] at row l/4, columns 8j + 2(l%4) + {0,1}, and d[j][2..3] eight
// rows lower: the layout of mma.sync m16n8k16 (attention_mma.cuh) per warp. The A fragment of
// a register-sourced wgmma is mma.sync's A fragment per warp likewise.
#pragma once

#include <cuda.h>  // CUtensorMap: the type only (the encoder is the driver's, fetched at run time)
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/attention.h"

namespace strata::kernels::cuda::attention {

__device__ inline uint32_t SmemAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// --- mbarrier: arrival counts and transaction bytes, waited on by phase parity.
__device__ inline void MbarInit(uint64_t* bar, uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(SmemAddress(bar)), "r"(arrivals));
}
// Makes the initialized barriers visible to the async proxy (TMA) and the other threads.
__device__ inline void MbarInitFence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// Arrives once and expects `bytes` more of transactions in the current phase.
__device__ inline void MbarArriveExpectTx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(SmemAddress(bar)),
               "r"(bytes)
               : "memory");
}
__device__ inline void MbarArrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(SmemAddress(bar)) : "memory");
}
// Returns once the phase of parity `parity` has completed.
__device__ inline void MbarWait(uint64_t* bar, uint32_t parity) {
  const uint32_t addr = SmemAddress(bar);
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(addr), "r"(parity)
        : "memory");
  } while (!done);
}

// --- TMA: one box of a 3-D tensor map into shared memory, completing on `bar`'s transaction
// count. `map` is a __grid_constant__ kernel parameter (its generic address is what TMA takes).
__device__ inline void TmaLoad3d(void* dst, const CUtensorMap* map, int32_t c0, int32_t c1,
                                 int32_t c2, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes "
      "[%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(SmemAddress(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(SmemAddress(bar))
      : "memory");
}

// Orders this thread's generic-proxy writes to shared memory (stores, cp.async) before later
// async-proxy reads of it (wgmma operands).
__device__ inline void FenceProxyAsync() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// A barrier of `threads` threads (a multiple of 32) under id `id` (1..15; 0 is __syncthreads).
__device__ inline void NamedBarrierSync(uint32_t id, uint32_t threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// --- wgmma.
// A shared-memory matrix descriptor with the 128-byte swizzle (offsets in bytes).
__device__ inline uint64_t SwizzledDesc(const void* smem, uint32_t leading_bytes,
                                        uint32_t stride_bytes) {
  return static_cast<uint64_t>((SmemAddress(smem) & 0x3FFFF) >> 4) |
         static_cast<uint64_t>((leading_bytes >> 4) & 0x3FFF) << 16 |
         static_cast<uint64_t>((stride_bytes >> 4) & 0x3FFF) << 32 | uint64_t{1} << 62;
}
// Before a warpgroup's wgmmas whose accumulators or A registers other instructions wrote.
__device__ inline void WgmmaFence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ inline void WgmmaCommit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
// Waits until at most kPending committed groups of this warpgroup are in flight.
template <int kPending>
__device__ inline void WgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// Keeps the compiler from moving reads or writes of a wgmma's accumulators or A registers
// across the fence before it or the wait after it (the asm statements name the registers; the
// fence and the wait do not).
template <int kTiles>
__device__ inline void PinRegisters(float (&d)[kTiles][4]) {
#pragma unroll
  for (int j = 0; j < kTiles; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[j][e]) : : "memory");
  }
}
template <int kTiles>
__device__ inline void PinRegisters(uint32_t (&a)[kTiles][4]) {
#pragma unroll
  for (int j = 0; j < kTiles; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(a[j][e]) : : "memory");
  }
}

// The instructions, one operand list per shape (generated, then written out: inline asm takes
// no loops). SS: A and B from shared memory, both K-major. RS: A from registers, B MN-major.
#define STRATA_WGMMA_SS128(TYPE) \
  asm volatile( \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n" \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " {" \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, " \
      "%18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, " \
      "%34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, " \
      "%50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63 " \
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n" \
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), \
        "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), \
        "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), \
        "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), \
        "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), \
        "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), \
        "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), \
        "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), \
        "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), \
        "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), \
        "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), \
        "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), \
        "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3]) \
      : "l"(desc_a), "l"(desc_b), "r"(1))

#define STRATA_WGMMA_RS64(TYPE) \
  asm volatile( \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n" \
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE " {" \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, " \
      "%18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31 " \
      "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n" \
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), \
        "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), \
        "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), \
        "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), \
        "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), \
        "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), \
        "+f"(d[7][2]), "+f"(d[7][3]) \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1))

#define STRATA_WGMMA_RS128(TYPE) \
  asm volatile( \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n" \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " {" \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, " \
      "%18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, " \
      "%34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, " \
      "%50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63 " \
      "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n" \
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), \
        "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), \
        "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), \
        "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), \
        "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), \
        "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), \
        "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), \
        "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), \
        "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), \
        "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), \
        "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), \
        "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), \
        "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3]) \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1))

// d (m64 x n128, f32) += A (m64 x k16) * B (k16 x n128), both K-major in shared memory.
template <AttentionDType kDType>
__device__ inline void WgmmaSS128(float (&d)[16][4], uint64_t desc_a, uint64_t desc_b) {
  if constexpr (kDType == AttentionDType::kBf16) {
    STRATA_WGMMA_SS128("bf16");
  } else {
    STRATA_WGMMA_SS128("f16");
  }
}

// d (m64 x kN, f32) += A (m64 x k16, registers: a) * B (k16 x kN, MN-major in shared memory).
template <int kN, AttentionDType kDType>
__device__ inline void WgmmaRS(float (&d)[kN / 8][4], const uint32_t (&a)[4], uint64_t desc_b) {
  static_assert(kN == 64 || kN == 128, "instances for n64 and n128");
  if constexpr (kN == 64 && kDType == AttentionDType::kBf16) {
    STRATA_WGMMA_RS64("bf16");
  } else if constexpr (kN == 64) {
    STRATA_WGMMA_RS64("f16");
  } else if constexpr (kDType == AttentionDType::kBf16) {
    STRATA_WGMMA_RS128("bf16");
  } else {
    STRATA_WGMMA_RS128("f16");
  }
}

#undef STRATA_WGMMA_SS128
#undef STRATA_WGMMA_RS64
#undef STRATA_WGMMA_RS128

}  // namespace strata::kernels::cuda::attention

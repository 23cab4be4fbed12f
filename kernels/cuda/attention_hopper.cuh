// Prefill attention for Hopper (sm_90a): the FlashAttention-2 algorithm of
// attention_prefill.cuh on warpgroup matrix multiplies (wgmma), with K/V tiles brought from the
// paged cache by the tensor memory accelerator (TMA). Chosen only where asked
// (PagedAttentionArgs::hopper) on a compute capability 9.0 device, for bf16/fp16 caches of
// head dim 64 or 128 whose block size tiles a key tile (HopperPrefillFits).
//
// A block of 288 threads owns one (tile of 128 query rows, sequence, query head):
//   * two consumer warpgroups, 64 query rows each. A warpgroup loads its rows of Q into shared
//     memory once (cp.async); then per key tile it computes S = Q K^T (wgmma, both operands in
//     shared memory), masks, caps and folds S into its rows' running max and sum (the online
//     softmax of the portable kernel, exp2 domain), and adds P V (wgmma, P from registers,
//     rounded to the input type) into f32 accumulators;
//   * a producer warp, one lane of which fills a two-stage ring of K and V tiles of 128 keys
//     with TMA boxes of one cache block each (a block's rows of one KV head are contiguous
//     under the cache's [block, slot, KV head, dim] layout: a 3-D tensor map over
//     (dim, KV head, slot)), completing on a "full" barrier per stage and tensor, and waits on
//     an "empty" barrier (one arrival per consumer warp) before refilling a stage.
// Boxes wholly past a tile's last key are not loaded; rows of the last tile past the block's
// last key hold stale data, so the consumers zero their V rows (both warpgroups share the
// stores, then meet at a barrier of their 256 threads) before P V (P is exactly 0 there, but 0
// times a stale NaN is not), and their scores are masked.
//
// Key tiles start at multiples of 128 and are visited in order: a row's result depends on its
// own sequence only (not the batch, not how its prompt was chunked), as with the portable
// kernel, whose tiles (64 keys) differ, so the two kernels' bits differ.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <string>

#include "absl/status/status.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/attention_mma.cuh"
#include "kernels/cuda/attention_wgmma.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace strata::kernels::cuda::attention {

inline constexpr int kHopperRows = 128;        // query rows per block, 64 per warpgroup
inline constexpr int kHopperStages = 2;        // K/V tiles in flight
inline constexpr int kHopperConsumerWarps = 8;
inline constexpr int kHopperThreads = (kHopperConsumerWarps + 1) * 32;
inline constexpr int kPanelCols = 64;          // 16-bit columns per 128-byte swizzled panel
static_assert(kHopperKeys == 128, "the tile shapes below assume 128 keys per tile");

// Bytes of one tile of 128 rows (queries or keys) by kDim columns.
template <int kDim>
inline constexpr int kHopperTileBytes = 128 * kDim * 2;
// Q, then the stages' K tiles, then their V tiles; 1024 bytes of slack to align the start.
template <int kDim>
inline constexpr size_t kHopperSmemBytes = (1 + 2 * kHopperStages) * kHopperTileBytes<kDim> + 1024;

// 224 registers a thread: nine warps of them fill the register file (under __launch_bounds__
// ptxas capped the kernel at 168 and spilled).
template <int kDim, AttentionDType kDType>
__global__ void __maxnreg__(224)
    HopperPrefillKernel(const PagedAttentionArgs a, const __grid_constant__ CUtensorMap k_map,
                        const __grid_constant__ CUtensorMap v_map) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using T = typename Elem<kDType>::T;
  constexpr int kPanels = kDim / kPanelCols;
  constexpr int kPanelBytes = 128 * 128;  // one panel of a 128-row tile
  constexpr int kTileBytes = kHopperTileBytes<kDim>;
  constexpr int kSTiles = kHopperKeys / 8;  // n8 tiles of S per warp
  constexpr int kOTiles = kDim / 8;         // n8 tiles of O per warp

  const int seq = blockIdx.y;
  const PrefillBlock block = PrefillBlockOf<kHopperRows, kHopperKeys>(a, seq, blockIdx.x);
  if (block.rows == 0) return;  // the whole block: nothing here is waited on yet
  const auto [q_start, tile_q, pos0, rows, key_begin, key_end] = block;
  const int32_t tiles = (key_end - key_begin + kHopperKeys - 1) / kHopperKeys;
  const int64_t head = blockIdx.z;
  const int32_t kv_head = static_cast<int32_t>(head / (a.num_heads / a.num_kv_heads));

  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = reinterpret_cast<unsigned char*>(
      (reinterpret_cast<uintptr_t>(smem_raw) + 1023) / 1024 * 1024);
  unsigned char* q_s = smem;                                // [panel][128 rows][128 B]
  unsigned char* k_s = q_s + kTileBytes;                    // [stage][panel][128 keys][128 B]
  unsigned char* v_s = k_s + kHopperStages * kTileBytes;
  __shared__ uint64_t full_k[kHopperStages], full_v[kHopperStages], empty[kHopperStages];

  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kHopperStages; ++s) {
      MbarInit(&full_k[s], 1);
      MbarInit(&full_v[s], 1);
      MbarInit(&empty[s], kHopperConsumerWarps);
    }
    MbarInitFence();
  }
  __syncthreads();  // the last block-wide barrier: the producer warp leaves the rest to named ones

  if (warp == kHopperConsumerWarps) {  // the producer
    if (lane != 0) return;
    const int32_t bs = static_cast<int32_t>(a.block_size);
    const int32_t box = min(bs, kHopperKeys);  // rows per box: one block's, or a tile's
    const int32_t* table = a.block_tables + seq * a.max_blocks_per_seq;
    for (int32_t j = 0; j < tiles; ++j) {
      const int s = j % kHopperStages;
      if (j >= kHopperStages) MbarWait(&empty[s], (j / kHopperStages - 1) & 1);
      const int32_t k0 = key_begin + j * kHopperKeys;
      const int32_t boxes = min((key_end - k0 + box - 1) / box, kHopperKeys / box);
      const uint32_t bytes = static_cast<uint32_t>(boxes * box * kDim * 2);
      for (int tensor = 0; tensor < 2; ++tensor) {
        uint64_t* bar = tensor == 0 ? &full_k[s] : &full_v[s];
        const CUtensorMap* map = tensor == 0 ? &k_map : &v_map;
        unsigned char* stage = (tensor == 0 ? k_s : v_s) + s * kTileBytes;
        MbarArriveExpectTx(bar, bytes);
        for (int32_t b = 0; b < boxes; ++b) {
          const int32_t key = k0 + b * box;
          const int32_t slot = table[key / bs] * bs + key % bs;
#pragma unroll
          for (int p = 0; p < kPanels; ++p) {
            TmaLoad3d(stage + p * kPanelBytes + b * box * 128, map, p * kPanelCols, kv_head, slot,
                      bar);
          }
        }
      }
    }
    return;
  }

  // A consumer warpgroup: rows 64 * group .. 64 * group + 63 of the tile.
  const int group = warp / 4;
  const int thread = threadIdx.x % 128;  // in the warpgroup
  const int group_warp = warp % 4;
  {
    constexpr int kChunks = kDim / 8;  // 16-byte chunks per row
    const T* q = static_cast<const T*>(a.q);
    for (int i = thread; i < 64 * kChunks; i += 128) {
      const int row = group * 64 + i / kChunks;
      const int c = i % kChunks;
      const bool valid = row < rows;
      const T* src = q + (int64_t{q_start + tile_q + (valid ? row : 0)} * a.num_heads + head) * kDim;
      CopyAsync16(q_s + (c / 8) * kPanelBytes + row * 128 + ((c % 8) ^ (row % 8)) * 16,
                  src + c * 8, valid);
    }
    CopyAsyncCommit();
    CopyAsyncWait<0>();
    FenceProxyAsync();
    NamedBarrierSync(1 + group, 128);
  }

  const int32_t pos[2] = {pos0 + group * 64 + group_warp * 16 + lane / 4,
                          pos0 + group * 64 + group_warp * 16 + lane / 4 + 8};
  const int32_t first[2] = {FirstVisibleKey(pos[0], a.sliding_window),
                            FirstVisibleKey(pos[1], a.sliding_window)};
  float o[kOTiles][4] = {};
  float m[2] = {-INFINITY, -INFINITY};
  float l[2] = {0.0f, 0.0f};
  const unsigned char* q_rows = q_s + group * 64 * 128;

  for (int32_t j = 0; j < tiles; ++j) {
    const int s = j % kHopperStages;
    const uint32_t parity = (j / kHopperStages) & 1;
    const int32_t k0 = key_begin + j * kHopperKeys;
    const unsigned char* k_tile = k_s + s * kTileBytes;
    unsigned char* v_tile = v_s + s * kTileBytes;

    float sc[kSTiles][4];
#pragma unroll
    for (int n = 0; n < kSTiles; ++n) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.0f;
    MbarWait(&full_k[s], parity);
    PinRegisters(sc);
    PinRegisters(o);
    WgmmaFence();
#pragma unroll
    for (int kk = 0; kk < kDim / 16; ++kk) {
      const int offset = (kk / 4) * kPanelBytes + (kk % 4) * 32;
      WgmmaSS128<kDType>(sc, SwizzledDesc(q_rows + offset, 16, 1024),
                         SwizzledDesc(k_tile + offset, 16, 1024));
    }
    WgmmaCommit();
    WgmmaWait<0>();
    PinRegisters(sc);
    PinRegisters(o);

    FoldSoftmaxTile(sc, o, m, l, k0, lane, pos, first, a.scale, a.softcap);
    uint32_t pa[kHopperKeys / 16][4];
#pragma unroll
    for (int kk = 0; kk < kHopperKeys / 16; ++kk) {
      pa[kk][0] = Pack2<kDType>(sc[2 * kk][0], sc[2 * kk][1]);
      pa[kk][1] = Pack2<kDType>(sc[2 * kk][2], sc[2 * kk][3]);
      pa[kk][2] = Pack2<kDType>(sc[2 * kk + 1][0], sc[2 * kk + 1][1]);
      pa[kk][3] = Pack2<kDType>(sc[2 * kk + 1][2], sc[2 * kk + 1][3]);
    }

    MbarWait(&full_v[s], parity);
    if (k0 + kHopperKeys > key_end) {  // the last tile: zero the V rows past the last key
      const int first_stale = key_end - k0;
      const int consumer = threadIdx.x;  // both warpgroups share the work, then meet
      for (int i = consumer; i < (kHopperKeys - first_stale) * kPanels * 8;
           i += kHopperConsumerWarps * 32) {
        const int row = first_stale + i / (kPanels * 8);
        const int chunk = i % (kPanels * 8);
        *reinterpret_cast<uint4*>(v_tile + (chunk / 8) * kPanelBytes + row * 128 +
                                  (chunk % 8) * 16) = make_uint4(0, 0, 0, 0);
      }
      FenceProxyAsync();
      NamedBarrierSync(3, kHopperConsumerWarps * 32);
    }
    PinRegisters(o);
    PinRegisters(pa);
    WgmmaFence();
#pragma unroll
    for (int kk = 0; kk < kHopperKeys / 16; ++kk) {
      WgmmaRS<kDim, kDType>(o, pa[kk],
                            SwizzledDesc(v_tile + kk * 16 * 128, kPanelBytes, 1024));
    }
    WgmmaCommit();
    WgmmaWait<0>();
    PinRegisters(o);
    PinRegisters(pa);
    __syncwarp();
    if (lane == 0) MbarArrive(&empty[s]);  // this warp is done with the stage
  }

  T* tile_out = static_cast<T*>(a.out) + (int64_t{q_start + tile_q} * a.num_heads + head) * kDim;
  StoreWarpRows<kDType>(o, l, group * 64 + group_warp * 16, rows, tile_out, a.num_heads * kDim,
                        lane);
#else
  __trap();  // built for another architecture; the registry chooses this kernel on sm_90 only
#endif
}

// The driver's tensor-map encoder (cuTensorMapEncodeTiled), fetched through the runtime so no
// target links libcuda; null where the driver has none.
using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*,
                                   const cuuint64_t*, const cuuint64_t*, const cuuint32_t*,
                                   const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                   CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
inline EncodeTiledFn TensorMapEncoder() {
  static const EncodeTiledFn encoder = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return static_cast<EncodeTiledFn>(nullptr);
    }
    return reinterpret_cast<EncodeTiledFn>(fn);
  }();
  return encoder;
}

// A tensor map over one cache tensor [num_blocks * block_size slots, num_kv_heads, kDim] as
// (dim, KV head, slot), with boxes of (64 columns, 1 head, `box_rows` slots), 128-byte swizzle.
template <int kDim, AttentionDType kDType>
absl::Status CacheTensorMap(CUtensorMap* map, const void* cache, const PagedAttentionArgs& a,
                            int box_rows, const char* what) {
  const EncodeTiledFn encode = TensorMapEncoder();
  if (encode == nullptr) {
    return absl::FailedPreconditionError(
        "hopper prefill attention: the driver has no cuTensorMapEncodeTiled");
  }
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(kDim),
                              static_cast<cuuint64_t>(a.num_kv_heads),
                              static_cast<cuuint64_t>(a.num_blocks * a.block_size)};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(kDim * 2),
                                 static_cast<cuuint64_t>(a.num_kv_heads * kDim * 2)};
  const cuuint32_t box[3] = {static_cast<cuuint32_t>(kPanelCols), 1,
                             static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  const CUresult result = encode(
      map,
      kDType == AttentionDType::kBf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                      : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
      3, const_cast<void*>(cache), dims, strides, box, element_strides,
      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (result != CUDA_SUCCESS) {
    return absl::InternalError(std::string("hopper prefill attention: encoding the ") + what +
                               " cache's tensor map failed (CUresult " +
                               std::to_string(static_cast<int>(result)) + ")");
  }
  return absl::OkStatus();
}

// Launches the Hopper prefill kernel over the step's sequences with more than one query token.
template <int kDim, AttentionDType kDType, bool kFp8Kv>
absl::Status LaunchHopper(const PagedAttentionArgs& a, void* stream) {
  static_assert(!kFp8Kv, "the Hopper prefill kernel reads bf16/fp16 caches only");
  static_assert(kDim == 64 || kDim == 128, "instances for head dims 64 and 128");
  if (absl::Status layout = CheckTunedLayout("hopper prefill", kDim, a); !layout.ok()) {
    return layout;
  }
  if (a.fp8_kv || !HopperPrefillFits(a.block_size)) {
    return absl::InvalidArgumentError(
        "hopper prefill attention: needs a 16-bit cache whose block size is a multiple of 8 "
        "that divides, or is a multiple of, 128 (given block size " +
        std::to_string(a.block_size) + (a.fp8_kv ? ", fp8 cache)" : ")"));
  }
  if (a.num_blocks <= 0 || a.num_blocks * a.block_size > (int64_t{1} << 31) - 1) {
    return absl::InvalidArgumentError("hopper prefill attention: num_blocks " +
                                      std::to_string(a.num_blocks) +
                                      " must be positive and address fewer than 2^31 slots");
  }
  if (a.max_query_len <= 1 || a.num_seqs == 0) return absl::OkStatus();
  const int box_rows = static_cast<int>(a.block_size < kHopperKeys ? a.block_size : kHopperKeys);
  CUtensorMap k_map, v_map;
  if (absl::Status s = CacheTensorMap<kDim, kDType>(&k_map, a.k_cache, a, box_rows, "K");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CacheTensorMap<kDim, kDType>(&v_map, a.v_cache, a, box_rows, "V");
      !s.ok()) {
    return s;
  }
  constexpr size_t kSmem = kHopperSmemBytes<kDim>;
  const cudaError_t err = cudaFuncSetAttribute(
      HopperPrefillKernel<kDim, kDType>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (err != cudaSuccess) {
    return absl::InternalError("hopper prefill attention: shared memory of " +
                               std::to_string(kSmem) + " bytes refused: " +
                               cudaGetErrorString(err));
  }
  const dim3 grid(static_cast<unsigned>((a.max_query_len + kHopperRows - 1) / kHopperRows),
                  static_cast<unsigned>(a.num_seqs), static_cast<unsigned>(a.num_heads));
  HopperPrefillKernel<kDim, kDType>
      <<<grid, kHopperThreads, kSmem, AsStream(stream)>>>(a, k_map, v_map);
  return LaunchStatus("HopperPrefillKernel");
}

}  // namespace strata::kernels::cuda::attention

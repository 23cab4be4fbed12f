// Mixture of experts on the device: routing (a warp per token), each expert's positions and
// the matmuls' tiles (one block), the experts' products as grouped matmuls on tensor cores
// (a block per tile of up to 64 of one expert's positions x 64 columns, mma.sync m16n8k16 with
// bf16 operands and f32 accumulators, a three-stage cp.async pipeline over k), and each
// token's weighted sum in expert-id order.
#include <cuda_bf16.h>

#include <type_traits>

#include "kernels/cuda/attention_mma.cuh"
#include "kernels/cuda/elem.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace strata::kernels::cuda {
namespace {

// ---- Routing --------------------------------------------------------------------------------

// A candidate expert (or group); id -1: none.
struct Candidate {
  float score;
  int32_t id;
};

// Whether a ranks before b: a higher score, the lower id on ties; anything before none.
__device__ inline bool Before(Candidate a, Candidate b) {
  return a.id >= 0 && (b.id < 0 || a.score > b.score || (a.score == b.score && a.id < b.id));
}

// The best of scores[0, n) that are open (and not NaN), on every lane of the warp.
__device__ inline Candidate WarpBest(const float* scores, const unsigned char* open, int64_t n) {
  Candidate best{0.0f, -1};
  for (int64_t i = threadIdx.x; i < n; i += 32) {
    const Candidate c{scores[i], static_cast<int32_t>(i)};
    if ((open == nullptr || open[i]) && c.score == c.score && Before(c, best)) best = c;
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    const Candidate other{__shfl_xor_sync(~0u, best.score, offset),
                          __shfl_xor_sync(~0u, best.id, offset)};
    if (Before(other, best)) best = other;
  }
  return best;
}

__device__ inline float WarpMax(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(~0u, v, offset));
  return v;
}

__device__ inline float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(~0u, v, offset);
  return v;
}

// One warp per token. Shared: probs [E], choose [E], group scores [G], open flags [E].
__global__ void MoeRouteKernel(const MoeRouteParams p) {
  extern __shared__ float shared[];
  __shared__ int32_t chosen[kMaxMoeTopK];
  const int64_t e = p.num_experts, g = p.num_groups, token = blockIdx.x;
  const int lane = threadIdx.x;
  float* probs = shared;
  float* choose = probs + e;
  float* group_score = choose + e;
  auto* open = reinterpret_cast<unsigned char*>(group_score + g);
  const float* logits = p.logits + token * e;
  if (p.sigmoid) {
    for (int64_t i = lane; i < e; i += 32) probs[i] = 1.0f / (1.0f + expf(-logits[i]));
  } else {
    float max = -INFINITY;
    for (int64_t i = lane; i < e; i += 32) max = fmaxf(max, logits[i]);
    max = WarpMax(max);
    float sum = 0.0f;
    for (int64_t i = lane; i < e; i += 32) sum += probs[i] = expf(logits[i] - max);
    sum = WarpSum(sum);
    for (int64_t i = lane; i < e; i += 32) probs[i] /= sum;
  }
  for (int64_t i = lane; i < e; i += 32) {
    choose[i] = probs[i] + (p.correction_bias != nullptr ? p.correction_bias[i] : 0.0f);
    open[i] = g == 1;
  }
  __syncwarp();
  if (g > 1) {
    // A group's score: its best choice (softmax), or its best two summed (sigmoid).
    const int64_t per = e / g;
    for (int64_t group = lane; group < g; group += 32) {
      float first = -INFINITY, second = -INFINITY;
      for (int64_t i = group * per; i < (group + 1) * per; ++i) {
        if (choose[i] > first) {
          second = first;
          first = choose[i];
        } else if (choose[i] > second) {
          second = choose[i];
        }
      }
      group_score[group] = p.sigmoid && per > 1 ? first + second : first;
    }
    __syncwarp();
    for (int64_t j = 0; j < p.topk_groups; ++j) {
      const Candidate best = WarpBest(group_score, nullptr, g);
      if (best.id < 0) break;
      for (int64_t i = best.id * per + lane; i < (best.id + 1) * per; i += 32) open[i] = 1;
      __syncwarp();
      if (lane == 0) group_score[best.id] = NAN;  // taken
      __syncwarp();
    }
  }
  for (int64_t j = 0; j < p.top_k; ++j) {
    const Candidate best = WarpBest(choose, open, e);
    if (lane == 0) {
      chosen[j] = best.id;
      if (best.id >= 0) open[best.id] = 0;
    }
    __syncwarp();
  }
  if (lane == 0) {
    float total = 0.0f;
    for (int64_t j = 0; j < p.top_k; ++j) total += chosen[j] >= 0 ? probs[chosen[j]] : 0.0f;
    for (int64_t j = 0; j < p.top_k; ++j) {
      const int32_t id = chosen[j];
      float w = id >= 0 ? probs[id] : 0.0f;
      if (p.renormalize && total > 0.0f) w /= total;
      p.ids[token * p.top_k + j] = id;
      p.weights[token * p.top_k + j] = w * p.routed_scale;
    }
  }
}

// ---- The plan -------------------------------------------------------------------------------

// One block. Shared: counts [L], then cursors [L].
__global__ void MoePlanKernel(const MoePlanParams p) {
  extern __shared__ int32_t counts[];
  int32_t* cursor = counts + p.num_local;
  auto local = [&](int64_t slot) {
    const int64_t e = int64_t{p.ids[slot]} - p.expert_begin;
    return e >= 0 && e < p.num_local ? e : int64_t{-1};
  };
  for (int64_t e = threadIdx.x; e < p.num_local; e += blockDim.x) counts[e] = 0;
  __syncthreads();
  for (int64_t s = threadIdx.x; s < p.num_slots; s += blockDim.x) {
    if (const int64_t e = local(s); e >= 0) atomicAdd(&counts[e], 1);
  }
  __syncthreads();
  if (threadIdx.x == 0) {  // offsets, and the matmuls' tiles: each expert's passes
    int32_t at = 0, tile = 0;
    for (int64_t e = 0; e < p.num_local; ++e) {
      if (e % kMaxMoeLaunchExperts == 0) p.chunk_tiles[e / kMaxMoeLaunchExperts] = tile;
      p.offsets[e] = cursor[e] = at;
      at += counts[e];
      for (int32_t row0 = 0; row0 < counts[e]; row0 += kMoeTileRows, ++tile) {
        p.tiles[2 * tile] = static_cast<int32_t>(e);
        p.tiles[2 * tile + 1] = row0;
      }
    }
    p.offsets[p.num_local] = at;
    p.chunk_tiles[(p.num_local + kMaxMoeLaunchExperts - 1) / kMaxMoeLaunchExperts] = tile;
  }
  __syncthreads();
  for (int64_t s = threadIdx.x; s < p.num_slots; s += blockDim.x) {
    int32_t position = -1;
    if (const int64_t e = local(s); e >= 0) {
      position = atomicAdd(&cursor[e], 1);
      p.rows[position] = static_cast<int32_t>(s / p.top_k);
    }
    p.positions[s] = position;
  }
}

// ---- The experts' products ------------------------------------------------------------------

constexpr int kBlockRows = kMoeTileRows;  // positions of a block's pass
constexpr int kBlockCols = 64;            // output columns of a block: 16 per warp
constexpr int kKStep = 32;                // k of one pipeline stage
constexpr int kStages = 3;                // the ring's depth: 46 KB of shared memory when gated
constexpr int kPitch = kKStep + 8;        // shared row pitch in elements: 80 bytes, so the 8
                                          // rows an ldmatrix reads fall in 8 bank groups
constexpr int kMatMulThreads = 128;

template <class T>
__device__ inline float RoundTo(float v) {
  T t;
  StoreF(&t, v);
  return LoadF(&t);
}

// Block (column tile, plan tile): one pass of up to 64 of an expert's positions; k in steps of
// 32 through a three-stage ring (A rounded to bf16 on the way in; rows past the pass and columns
// or k past the end are zeros), each warp 16 columns by every 16-row tile in use. Blocks past
// the chunk's tiles (the grid is sized for the most a plan can have) return at once.
template <class A, class Out, bool kGated>
__global__ void __maxnreg__(168) MoeMatMulKernel(const __grid_constant__ MoeMatMulParams p) {
  constexpr int kMats = kGated ? 2 : 1;
  const int64_t part = p.first / kMaxMoeLaunchExperts;  // the launch's chunk of the plan
  const int64_t tile = p.chunk_tiles[part] + int64_t{blockIdx.y};
  if (tile >= p.chunk_tiles[part + 1]) return;
  const int32_t expert = p.tiles[2 * tile], row0 = p.tiles[2 * tile + 1];
  const int32_t begin = p.offsets[expert], count = p.offsets[expert + 1] - begin;
  __shared__ __align__(16) __nv_bfloat16 a_tile[kStages][kBlockRows][kPitch];
  __shared__ __align__(16) __nv_bfloat16 w_tile[kStages][kMats][kBlockCols][kPitch];
  const auto* w = static_cast<const __nv_bfloat16*>(p.w[expert - p.first]);
  const auto* up = static_cast<const __nv_bfloat16*>(p.up[expert - p.first]);
  const int64_t col0 = int64_t{blockIdx.x} * kBlockCols;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t k_steps = (p.k + kKStep - 1) / kKStep;
  const int rows = min(count - row0, kBlockRows);
  const int m_tiles = (rows + 15) / 16;
  auto load = [&](int stage, int64_t k0) {
    for (int c = threadIdx.x; c < kBlockRows * (kKStep / 8); c += kMatMulThreads) {
      const int r = c / (kKStep / 8), chunk = c % (kKStep / 8);
      const int64_t kk = k0 + chunk * 8;
      const bool valid = r < rows && kk < p.k;
      int64_t row = 0;
      if (valid) {
        const int64_t position = begin + row0 + r;
        row = p.a_rows != nullptr ? p.a_rows[position] : position;
      }
      __nv_bfloat16* dst = &a_tile[stage][r][chunk * 8];
      const A* src = static_cast<const A*>(p.a) + (valid ? row * p.k + kk : 0);
      if constexpr (std::is_same_v<A, __nv_bfloat16>) {
        attention::CopyAsync16(dst, src, valid);
      } else {  // f32: rounded here
        uint4 packed = {0, 0, 0, 0};
        if (valid) {
          const float4 lo = reinterpret_cast<const float4*>(src)[0];
          const float4 hi = reinterpret_cast<const float4*>(src)[1];
          const __nv_bfloat162 v[4] = {__floats2bfloat162_rn(lo.x, lo.y),
                                       __floats2bfloat162_rn(lo.z, lo.w),
                                       __floats2bfloat162_rn(hi.x, hi.y),
                                       __floats2bfloat162_rn(hi.z, hi.w)};
          packed = *reinterpret_cast<const uint4*>(v);
        }
        *reinterpret_cast<uint4*>(dst) = packed;
      }
    }
    for (int c = threadIdx.x; c < kMats * kBlockCols * (kKStep / 8); c += kMatMulThreads) {
      const int m = c / (kBlockCols * (kKStep / 8));
      const int r = c / (kKStep / 8) % kBlockCols, chunk = c % (kKStep / 8);
      const int64_t col = col0 + r, kk = k0 + chunk * 8;
      const bool valid = col < p.n && kk < p.k;
      attention::CopyAsync16(&w_tile[stage][m][r][chunk * 8],
                             (m == 0 ? w : up) + (valid ? col * p.k + kk : 0), valid);
    }
    attention::CopyAsyncCommit();
  };
  float acc[kMats][4][2][4] = {};
  // One commit group a step (empty past the end), so step s's tiles are complete once at most
  // kStages - 2 younger groups are pending.
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_steps) {
      load(s, s * kKStep);
    } else {
      attention::CopyAsyncCommit();
    }
  }
  for (int64_t step = 0; step < k_steps; ++step) {
    const int stage = static_cast<int>(step % kStages);
    attention::CopyAsyncWait<kStages - 2>();
    __syncthreads();  // every thread's copies of this step landed; the previous step is read
    if (const int64_t next = step + kStages - 1; next < k_steps) {
      load(static_cast<int>(next % kStages), next * kKStep);  // into the previous step's stage
    } else {
      attention::CopyAsyncCommit();
    }
#pragma unroll
    for (int kk = 0; kk < kKStep; kk += 16) {
      // B fragments of the warp's two 8-column tiles: matrix i of the x4 load holds columns
      // (i / 2) * 8.. and k (i % 2) * 8.. (b0, b1 of tile 0, then of tile 1).
      uint32_t b[kMats][4];
#pragma unroll
      for (int m = 0; m < kMats; ++m) {
        const int col = warp * 16 + (lane / 16) * 8 + lane % 8;
        attention::LdMatrixX4(b[m], &w_tile[stage][m][col][kk + (lane / 8) % 2 * 8]);
      }
#pragma unroll
      for (int mt = 0; mt < 4; ++mt) {
        if (mt >= m_tiles) break;
        uint32_t a[4];  // matrix i: rows (i % 2) * 8.., k (i / 2) * 8..
        attention::LdMatrixX4(a, &a_tile[stage][mt * 16 + (lane / 8) % 2 * 8 + lane % 8]
                                        [kk + (lane / 16) * 8]);
#pragma unroll
        for (int m = 0; m < kMats; ++m) {
          attention::Mma<AttentionDType::kBf16>(acc[m][mt][0], a, b[m][0], b[m][1]);
          attention::Mma<AttentionDType::kBf16>(acc[m][mt][1], a, b[m][2], b[m][3]);
        }
      }
    }
  }
#pragma unroll
  for (int mt = 0; mt < 4; ++mt) {
    if (mt >= m_tiles) break;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int r = mt * 16 + lane / 4 + half * 8;
        if (r >= rows) continue;
        const int64_t position = begin + row0 + r;
        const int64_t col = col0 + warp * 16 + nt * 8 + 2 * (lane % 4);
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          if (col + c >= p.n) continue;
          float v = acc[0][mt][nt][half * 2 + c];
          if constexpr (kGated) {
            const float u = acc[kMats - 1][mt][nt][half * 2 + c];
            v = Activate(p.act, RoundTo<Out>(v)) * RoundTo<Out>(u);
          }
          StoreF(static_cast<Out*>(p.out) + position * p.n + col + c, v);
        }
      }
    }
  }
}

// ---- Each token's sum -----------------------------------------------------------------------

template <class T>
__global__ void MoeCombineKernel(const MoeCombineParams p) {
  __shared__ int32_t ids[kMaxMoeTopK], positions[kMaxMoeTopK];
  __shared__ float weights[kMaxMoeTopK];
  __shared__ int terms;
  const int64_t token = blockIdx.x;
  if (threadIdx.x == 0) {  // the token's local slots, by expert id (insertion, stable)
    int n = 0;
    for (int64_t j = 0; j < p.top_k; ++j) {
      const int64_t slot = token * p.top_k + j;
      if (p.positions[slot] < 0) continue;
      int at = n++;
      for (; at > 0 && ids[at - 1] > p.ids[slot]; --at) {
        ids[at] = ids[at - 1];
        positions[at] = positions[at - 1];
        weights[at] = weights[at - 1];
      }
      ids[at] = p.ids[slot];
      positions[at] = p.positions[slot];
      weights[at] = p.weights[slot];
    }
    terms = n;
  }
  __syncthreads();
  T* y = static_cast<T*>(p.y) + token * p.cols;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) {
    float sum = 0.0f;
    for (int i = 0; i < terms; ++i) {  // as the CPU adds them: each product rounded, then added
      sum = __fadd_rn(sum, __fmul_rn(weights[i], p.products[int64_t{positions[i]} * p.cols + c]));
    }
    StoreF(y + c, sum);
  }
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

absl::Status LaunchMoeRoute(const MoeRouteParams& p, void* stream) {
  constexpr int64_t kMaxExperts = 4096;  // its scores and flags in 48 KB of shared memory
  // Dynamic shared memory (scores, group scores, flags) beside the kernel's static 128 bytes.
  auto shared = [&] { return (2 * p.num_experts + p.num_groups) * 4 + p.num_experts; };
  if (p.logits == nullptr || p.ids == nullptr || p.weights == nullptr || p.num_tokens < 0 ||
      p.num_tokens > 0x7fffffff || p.num_experts < 1 || p.num_experts > kMaxExperts ||
      p.top_k < 1 || p.top_k > kMaxMoeTopK || p.top_k > p.num_experts || p.num_groups < 1 ||
      p.num_experts % p.num_groups != 0 || p.topk_groups < 1 || p.topk_groups > p.num_groups ||
      p.topk_groups * (p.num_experts / p.num_groups) < p.top_k ||
      shared() > 48 * 1024 - kMaxMoeTopK * 4) {
    return absl::InvalidArgumentError(
        "LaunchMoeRoute: null pointer, or not 1 <= top_k <= min(experts, 32), experts <= 4096 in "
        "groups that divide them (their scores within 48 KB), and the groups kept holding top_k "
        "experts");
  }
  if (p.num_tokens == 0) return absl::OkStatus();
  MoeRouteKernel<<<static_cast<unsigned>(p.num_tokens), 32, static_cast<size_t>(shared()),
                   AsStream(stream)>>>(p);
  return LaunchStatus("MoeRouteKernel");
}

absl::Status LaunchMoePlan(const MoePlanParams& p, void* stream) {
  constexpr int64_t kMaxLocal = 6144;  // counts and cursors in 48 KB of shared memory
  if (p.ids == nullptr || p.offsets == nullptr || p.rows == nullptr || p.positions == nullptr ||
      p.tiles == nullptr || p.chunk_tiles == nullptr || p.num_slots < 0 ||
      p.num_slots > 0x7fffffff || p.top_k < 1 || p.num_slots % p.top_k != 0 ||
      p.num_local < 1 || p.num_local > kMaxLocal) {
    return absl::InvalidArgumentError(
        "LaunchMoePlan: null pointer, or slots not tokens x top_k, or not 1 to 6144 local experts");
  }
  MoePlanKernel<<<1, 1024, 2 * p.num_local * 4, AsStream(stream)>>>(p);
  return LaunchStatus("MoePlanKernel");
}

absl::Status LaunchMoeMatMul(const MoeMatMulParams& p, void* stream) {
  bool ok = p.a != nullptr && p.offsets != nullptr && p.tiles != nullptr &&
            p.chunk_tiles != nullptr && p.out != nullptr && Aligned16(p.a) && p.num_slots >= 0 &&
            p.num_slots <= 0x7fffffff && p.first >= 0 && p.first % kMaxMoeLaunchExperts == 0 &&
            p.num_experts >= 1 && p.num_experts <= kMaxMoeLaunchExperts && p.n >= 1 &&
            p.n <= (int64_t{0x7fffffff} - kBlockCols) && p.k >= 8 && p.k % 8 == 0 &&
            MoeMaxTiles(p.num_slots, p.num_experts) <= 65535;  // the grid's rows
  for (int64_t e = 0; ok && e < p.num_experts; ++e) {
    ok = p.w[e] != nullptr && Aligned16(p.w[e]) &&
         (!p.gated || (p.up[e] != nullptr && Aligned16(p.up[e])));
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        "LaunchMoeMatMul: null or unaligned pointer, not 1 to 256 experts from a multiple of "
        "256, k not a multiple of 8, or over 4 million slots");
  }
  if (p.num_slots == 0) return absl::OkStatus();
  // As many tile rows as the chunk's experts could need (MoeMaxTiles).
  const dim3 grid(static_cast<unsigned>((p.n + kBlockCols - 1) / kBlockCols),
                  static_cast<unsigned>(MoeMaxTiles(p.num_slots, p.num_experts)));
  return DispatchElem(p.a_elem, [&](auto* a_tag) {
    using In = std::remove_pointer_t<decltype(a_tag)>;
    return DispatchElem(p.out_elem, [&](auto* out_tag) {
      using Out = std::remove_pointer_t<decltype(out_tag)>;
      if (p.gated) {
        MoeMatMulKernel<In, Out, true><<<grid, kMatMulThreads, 0, AsStream(stream)>>>(p);
      } else {
        MoeMatMulKernel<In, Out, false><<<grid, kMatMulThreads, 0, AsStream(stream)>>>(p);
      }
      return LaunchStatus("MoeMatMulKernel");
    });
  });
}

absl::Status LaunchMoeCombine(const MoeCombineParams& p, void* stream) {
  if (p.products == nullptr || p.ids == nullptr || p.weights == nullptr ||
      p.positions == nullptr || p.y == nullptr || p.num_tokens < 0 ||
      p.num_tokens > 0x7fffffff || p.top_k < 1 || p.top_k > kMaxMoeTopK || p.cols < 0) {
    return absl::InvalidArgumentError(
        "LaunchMoeCombine: null pointer, negative shape, or top_k not in [1, 32]");
  }
  if (p.num_tokens == 0 || p.cols == 0) return absl::OkStatus();
  return DispatchElem(p.elem, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    MoeCombineKernel<T><<<static_cast<unsigned>(p.num_tokens), 256, 0, AsStream(stream)>>>(p);
    return LaunchStatus("MoeCombineKernel");
  });
}

}  // namespace strata::kernels::cuda

// Sampling on the device, by the host sampler's rules.
//
// Greedy: one block per row; each thread scans a strided slice (ids ascending, so a strict >
// keeps its lowest id of a tie), then the block merges (value, id) pairs, larger value first
// and lower id on ties, and ORs the non-finite flags.
#include <cmath>
#include <cstdint>

#include "kernels/cuda/elem.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace strata::kernels::cuda {
namespace {

constexpr int kThreads = 256;

struct Best {
  float value;
  int32_t id;
  bool bad;     // a NaN or +inf seen
  bool finite;  // a finite value seen
};

__device__ inline Best Merge(Best a, Best b) {
  Best m = (b.value > a.value || (b.value == a.value && b.id < a.id)) ? b : a;
  m.bad = a.bad || b.bad;
  m.finite = a.finite || b.finite;
  return m;
}

__device__ inline Best Shuffle(Best b, int offset) {
  Best o;
  o.value = __shfl_xor_sync(0xffffffffu, b.value, offset);
  o.id = __shfl_xor_sync(0xffffffffu, b.id, offset);
  o.bad = __shfl_xor_sync(0xffffffffu, static_cast<int>(b.bad), offset) != 0;
  o.finite = __shfl_xor_sync(0xffffffffu, static_cast<int>(b.finite), offset) != 0;
  return o;
}

__global__ void __launch_bounds__(kThreads) GreedyKernel(const GreedyParams p) {
  const float* row = p.logits + blockIdx.x * p.vocab;
  Best best{-INFINITY, 0x7fffffff, false, false};
  for (int64_t i = threadIdx.x; i < p.vocab; i += kThreads) {
    const float x = row[i];
    best.bad = best.bad || isnan(x) || x == INFINITY;
    best.finite = best.finite || isfinite(x);
    if (x > best.value || best.id == 0x7fffffff) {
      best.value = x;
      best.id = static_cast<int32_t>(i);
    }
  }
  for (int offset = 16; offset > 0; offset >>= 1) best = Merge(best, Shuffle(best, offset));
  __shared__ Best partial[kThreads / 32];
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = best;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) best = Merge(best, partial[w]);
    p.tokens[blockIdx.x] = best.bad || !best.finite ? p.non_finite : best.id;
  }
}


// ---- Sampling: one block per row, the host sampler's rules ----------------------------------
//
// Candidates in the host's order (logit descending, id ascending) are keyed by a 64-bit
// integer: the logit's order-preserving bits above the inverted id, so every prefix of that
// order is "key >= some key". Top-k, the top-p cut and the draw are each a radix select over
// the key, 8 bits a pass from the top: a histogram of counts or masses per digit, then the
// digit where the running weight reaches the target. Without top-k and top-p the host walks
// the candidates by id: a block scan of per-thread chunk sums finds the crossing chunk, which
// is walked.
//
// Masses are fixed-point integers, E scaled by 2^(62 - bits(vocab)) and truncated, so every
// sum is exact whatever order the histograms' shared-memory atomics add in: a row draws the
// same token on every run and in every batch. A token whose E is below the scale's resolution
// (2^-45 of the top token's at Llama 3's vocabulary) weighs nothing and is never drawn.

constexpr int kSampleThreads = 1024;
constexpr int kWarps = kSampleThreads / 32;

__device__ inline uint64_t SortKey(float l, int64_t id) {
  if (l == 0.0f) l = 0.0f;  // -0 equals +0 on the host: one key, ties broken by id
  uint32_t b = __float_as_uint(l);
  b = (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
  return (static_cast<uint64_t>(b) << 32) | (0xFFFFFFFFu - static_cast<uint32_t>(id));
}

__device__ inline int32_t IdOfKey(uint64_t key) {
  return static_cast<int32_t>(0xFFFFFFFFu - static_cast<uint32_t>(key));
}

struct Add {
  template <class T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
struct Max {
  template <class T>
  __device__ T operator()(T a, T b) const { return a > b ? a : b; }
};
struct Min {
  template <class T>
  __device__ T operator()(T a, T b) const { return a < b ? a : b; }
};

struct SampleShared {
  unsigned long long hist[256];
  uint64_t warp[kWarps];
  int chosen;
};

// `v` combined over the block in one fixed order; every thread gets the result.
template <class T, class Op>
__device__ T BlockAll(T v, Op op, T* smem) {
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  __syncthreads();  // smem may still be read from the last call
  if (threadIdx.x % 32 == 0) smem[threadIdx.x / 32] = v;
  __syncthreads();
  v = smem[0];
  for (int w = 1; w < kWarps; ++w) v = op(v, smem[w]);
  return v;
}

// The sum of `v` over the threads before this one, and the block's total.
__device__ uint64_t BlockExclusiveSum(uint64_t v, uint64_t* smem, uint64_t* total) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  uint64_t inclusive = v;
  for (int offset = 1; offset < 32; offset <<= 1) {
    const uint64_t before = __shfl_up_sync(0xffffffffu, inclusive, offset);
    if (lane >= offset) inclusive += before;
  }
  uint64_t exclusive = __shfl_up_sync(0xffffffffu, inclusive, 1);
  if (lane == 0) exclusive = 0;
  __syncthreads();
  if (lane == 31) smem[warp] = inclusive;
  __syncthreads();
  uint64_t warps_before = 0, all = 0;
  for (int w = 0; w < kWarps; ++w) {
    if (w < warp) warps_before += smem[w];
    all += smem[w];
  }
  *total = all;
  return warps_before + exclusive;
}

struct SampleRow {
  const float* x;
  int64_t vocab;
  float max;
  float inv_t;
  float min_p;
  bool filter;  // min-p on
  float scale;  // fixed point: 2^(62 - bits(vocab)), so vocab weights of at most 1 sum below 2^62

  // The host's unnormalised probability: exp((l - max) / T), the max token's being 1.
  __device__ float E(int64_t i) const { return expf((x[i] - max) * inv_t); }
  // A candidate after min-p (which keeps p >= min_p * max p, i.e. E >= min_p).
  __device__ bool Kept(float e) const { return !filter || e >= min_p; }
  // E as a fixed-point weight.
  __device__ uint64_t W(float e) const { return static_cast<uint64_t>(e * scale); }
};

// Among the candidates with key >= floor (and past min-p when `filter`), in the host's order:
// the key of the first at which the running weight (a count, or the mass W when `by_mass`)
// reaches `target` (>= target, or > target when `strict`), or the last with weight should the
// target be the whole weight (u * mass rounded up to it); *found = false when no candidate has
// weight.
__device__ __forceinline__ uint64_t SelectKey(const SampleRow& r, uint64_t floor, bool filter, bool by_mass,
                              double target, bool strict, bool* found, SampleShared& s) {
  uint64_t prefix = 0, mask = 0;
  uint64_t above = 0;  // weight of the candidates above the prefix's range (thread 0's)
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += kSampleThreads) s.hist[i] = 0;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < r.vocab; i += kSampleThreads) {
      const uint64_t key = SortKey(r.x[i], i);
      if (key < floor || (key & mask) != prefix) continue;
      uint64_t w = 1;
      if (by_mass || filter) {
        const float e = r.E(i);
        if (filter && !r.Kept(e)) continue;
        if (by_mass) w = r.W(e);
      }
      if (w != 0) atomicAdd(&s.hist[(key >> shift) & 255], static_cast<unsigned long long>(w));
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int chosen = -1, lowest = -1;
      uint64_t above_lowest = above;  // `above` without the lowest weighed digit's weight
      for (int d = 255; d >= 0; --d) {
        if (s.hist[d] == 0) continue;
        lowest = d;
        above_lowest = above;
        const uint64_t reach = above + s.hist[d];
        if (strict ? static_cast<double>(reach) > target : static_cast<double>(reach) >= target) {
          chosen = d;
          break;
        }
        above = reach;
      }
      if (chosen < 0) above = above_lowest;  // the next pass walks inside `lowest`
      s.chosen = chosen >= 0 ? chosen : lowest;
    }
    __syncthreads();
    const int chosen = s.chosen;
    if (chosen < 0) {
      *found = false;
      return 0;
    }
    prefix |= static_cast<uint64_t>(chosen) << shift;
    mask |= uint64_t{255} << shift;
  }
  *found = true;
  return prefix;
}

// The candidates' fixed-point mass: key >= floor, past min-p when `filter`.
__device__ __forceinline__ uint64_t MassFrom(const SampleRow& r, uint64_t floor, bool filter, SampleShared& s) {
  uint64_t mass = 0;
  for (int64_t i = threadIdx.x; i < r.vocab; i += kSampleThreads) {
    if (floor != 0 && SortKey(r.x[i], i) < floor) continue;
    const float e = r.E(i);
    if (!filter || r.Kept(e)) mass += r.W(e);
  }
  return BlockAll(mass, Add{}, s.warp);
}

__global__ void __launch_bounds__(kSampleThreads, 1) SampleKernel(const SampleParams p) {
  __shared__ SampleShared s;
  const SampleRowParams rp = p.rows[blockIdx.x];
  const float* x = p.logits + static_cast<int64_t>(rp.row) * p.vocab;
  uint64_t top_key = 0;  // the row's maximum (lowest id on ties) by the keys' order
  int bad = 0, finite = 0;
  for (int64_t i = threadIdx.x; i < p.vocab; i += kSampleThreads) {
    const float v = x[i];
    bad |= isnan(v) || v == INFINITY;
    finite |= isfinite(v);
    const uint64_t key = SortKey(v, i);
    if (key > top_key) top_key = key;
  }
  bad = __syncthreads_or(bad);
  finite = __syncthreads_or(finite);
  if (bad || !finite) {  // block-uniform
    if (threadIdx.x == 0) p.tokens[rp.row] = p.non_finite;
    return;
  }
  const uint64_t top = BlockAll(top_key, Max{}, s.warp);
  const int bits = 64 - __clzll(static_cast<unsigned long long>(p.vocab));
  const SampleRow r{x, p.vocab, x[IdOfKey(top)], rp.inv_t, rp.min_p, rp.min_p > 0.0f,
                    ldexpf(1.0f, 62 - bits)};
  int32_t token = 0;
  if (rp.top_k > 0 || rp.top_p < 1.0f) {  // candidates by logit
    uint64_t floor = 0;
    bool found = false;
    if (rp.top_k > 0 && rp.top_k < p.vocab) {  // the k-th key: the top-k are key >= it
      floor = SelectKey(r, 0, false, false, static_cast<double>(rp.top_k), false, &found, s);
    }
    if (rp.top_p < 1.0f) {  // the smallest prefix holding top_p of the mass after top-k
      const double kept = static_cast<double>(MassFrom(r, floor, false, s));
      const uint64_t cut = SelectKey(r, floor, false, true, static_cast<double>(rp.top_p) * kept,
                                     false, &found, s);
      if (found) floor = cut;
    }
    const double kept = static_cast<double>(MassFrom(r, floor, r.filter, s));
    const uint64_t drawn = SelectKey(r, floor, r.filter, true, rp.u * kept, true, &found, s);
    token = IdOfKey(found ? drawn : top);  // not found: nothing weighs (cannot be: the top does)
  } else {  // candidates by id: each thread a contiguous chunk, walked where the draw lands
    const int64_t chunk = (p.vocab + kSampleThreads - 1) / kSampleThreads;
    const int64_t start = static_cast<int64_t>(threadIdx.x) * chunk;
    const int64_t begin = start < p.vocab ? start : p.vocab;
    const int64_t end = begin + chunk < p.vocab ? begin + chunk : p.vocab;
    uint64_t mine = 0;
    int64_t last = -1;
    for (int64_t i = begin; i < end; ++i) {
      const float e = r.E(i);
      if (!r.Kept(e) || r.W(e) == 0) continue;
      mine += r.W(e);
      last = i;  // the last with weight: where a draw rounded past the end lands
    }
    uint64_t kept = 0;
    const uint64_t before = BlockExclusiveSum(mine, s.warp, &kept);
    const double target = rp.u * static_cast<double>(kept);
    int64_t pick = INT64_MAX;
    uint64_t acc = before;
    for (int64_t i = begin; i < end; ++i) {
      const float e = r.E(i);
      if (!r.Kept(e) || r.W(e) == 0) continue;
      // Past the crossing already (a later chunk): its first candidate with weight, should the
      // crossing chunk's walk not get there (it does: integer sums are exact; kept for safety).
      acc += r.W(e);
      if (static_cast<double>(before) > target || static_cast<double>(acc) > target) {
        pick = i;
        break;
      }
    }
    pick = BlockAll(pick, Min{}, reinterpret_cast<int64_t*>(s.warp));
    last = BlockAll(last, Max{}, reinterpret_cast<int64_t*>(s.warp));
    // Nothing weighs (cannot be: the top token's weight is the scale): the top token.
    token = static_cast<int32_t>(pick != INT64_MAX ? pick : last >= 0 ? last : IdOfKey(top));
  }
  if (threadIdx.x == 0) p.tokens[rp.row] = token;
}

// Logprobs: one block of kSampleThreads per row. The max, then the double sum of exp(l - max)
// (each thread's strided elements in order, then BlockAll's fixed tree), then top_n passes that
// each take the largest key below the previous one.
__global__ void __launch_bounds__(kSampleThreads) LogprobsKernel(const LogprobsParams p) {
  __shared__ float smem_f[kWarps];
  __shared__ double smem_d[kWarps];
  __shared__ uint64_t smem_u[kWarps];
  const LogprobRowParams rp = p.rows[blockIdx.x];
  const float* x = p.logits + static_cast<int64_t>(rp.row) * p.vocab;
  float max = -INFINITY;
  for (int64_t i = threadIdx.x; i < p.vocab; i += kSampleThreads) max = fmaxf(max, x[i]);
  max = BlockAll(max, Max{}, smem_f);
  double total = 0.0;
  for (int64_t i = threadIdx.x; i < p.vocab; i += kSampleThreads) {
    total += exp(static_cast<double>(x[i]) - static_cast<double>(max));
  }
  total = BlockAll(total, Add{}, smem_d);
  const float log_z = __fadd_rn(max, static_cast<float>(log(total)));
  LogprobsOut* out = p.out + blockIdx.x;
  const int32_t token = p.tokens[rp.token_at];
  if (threadIdx.x == 0) {
    out->logprob = token >= 0 && token < p.vocab ? __fsub_rn(x[token], log_z) : NAN;
  }
  const int top_n = static_cast<int>(rp.top_n < p.vocab ? rp.top_n : p.vocab);
  uint64_t below = ~uint64_t{0};  // every key is below it (no key is all ones: ids < 2^31)
  for (int k = 0; k < top_n; ++k) {
    uint64_t best = 0;  // below every key (the -inf and NaN keys are not 0 either)
    for (int64_t i = threadIdx.x; i < p.vocab; i += kSampleThreads) {
      const uint64_t key = SortKey(x[i], i);
      if (key < below && key > best) best = key;
    }
    best = BlockAll(best, Max{}, smem_u);
    if (threadIdx.x == 0) {
      const int32_t id = IdOfKey(best);
      out->top_ids[k] = id;
      out->top_logprobs[k] = __fsub_rn(x[id], log_z);
    }
    below = best;
  }
}

}  // namespace

absl::Status LaunchLogprobs(const LogprobsParams& params, void* stream) {
  if (params.num_rows < 0 || params.num_rows > 0x7fffffff || params.vocab <= 0 ||
      params.vocab > 0x7fffffff) {
    return absl::InvalidArgumentError("LaunchLogprobs: bad rows/vocab");
  }
  if (params.num_rows == 0) return absl::OkStatus();
  if (params.logits == nullptr || params.rows == nullptr || params.tokens == nullptr ||
      params.out == nullptr) {
    return absl::InvalidArgumentError("LaunchLogprobs: null pointer");
  }
  LogprobsKernel<<<static_cast<unsigned>(params.num_rows), kSampleThreads, 0, AsStream(stream)>>>(
      params);
  return LaunchStatus("LogprobsKernel");
}

absl::Status LaunchGreedy(const GreedyParams& params, void* stream) {
  if (params.logits == nullptr || params.tokens == nullptr || params.rows < 0 ||
      params.rows > 0x7fffffff || params.vocab <= 0 || params.vocab > 0x7fffffff) {
    return absl::InvalidArgumentError("LaunchGreedy: null pointer or bad rows/vocab");
  }
  if (params.rows == 0) return absl::OkStatus();
  GreedyKernel<<<static_cast<unsigned>(params.rows), kThreads, 0, AsStream(stream)>>>(params);
  return LaunchStatus("GreedyKernel");
}

absl::Status LaunchSample(const SampleParams& params, void* stream) {
  if (params.logits == nullptr || params.rows == nullptr || params.tokens == nullptr ||
      params.num_rows < 0 || params.num_rows > 0x7fffffff || params.vocab <= 0 ||
      params.vocab > 0x7fffffff) {
    return absl::InvalidArgumentError("LaunchSample: null pointer or bad rows/vocab");
  }
  if (params.num_rows == 0) return absl::OkStatus();
  SampleKernel<<<static_cast<unsigned>(params.num_rows), kSampleThreads, 0, AsStream(stream)>>>(
      params);
  return LaunchStatus("SampleKernel");
}

}  // namespace strata::kernels::cuda

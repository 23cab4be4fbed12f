// The kernels behind every ISA table, written once over a traits type T (simd_scalar.h,
// simd_avx2.h, simd_avx512.h) and instantiated in each ISA translation unit with that unit's
// compiler flags. Include only from kernels_<isa>.cc, after the traits header; everything is
// in an anonymous namespace so each unit keeps its own copies (see simd_avx2.h).
//
// Matmul (y = x · w^T, weights [n, k] row-major) is a dot-product formulation: a tile of
// kMr rows of x times NR rows of w keeps kMr * NR vector accumulators, so every weight vector
// loaded (and converted from f16/bf16, or unpacked from q4_0) is reused kMr times and every
// x vector NR times. Weight rows are walked in panels of kPanelRows so a panel stays in L2
// while all rows of x pass over it (prefill). Decode (m < 4) is memory-bound: tiles prefetch
// the rows of the next tile, and quantized weights go two rows at a time (see ForEachTile).
// Every output is one FMA chain over k whatever the tile (AccumulatorSets): batch invariance.
// Quantized weights are dotted in int8 against activations quantized to q8_0 (exactly as
// QuantizeRow): one 32-block per step, block sums scaled by d_w * d_x in f32.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/isa.h"

namespace strata::kernels::cpu {
namespace {

// Weight rows per L2 panel (prefill reuse; at k = 8192 f32 a panel is 512 KiB).
constexpr int64_t kPanelRows = 16;

inline int64_t MinI(int64_t a, int64_t b) { return a < b ? a : b; }

inline float Bf16Bits(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// Loads T::kW weights starting at element kk of a row of dtype D.
template <class T, DType D>
typename T::F LoadW(const std::byte* row, int64_t kk) {
  if constexpr (D == DType::kF32) {
    return T::Load(reinterpret_cast<const float*>(row) + kk);
  } else if constexpr (D == DType::kF16) {
    return T::LoadF16(reinterpret_cast<const uint16_t*>(row) + kk);
  } else {
    return T::LoadBF16(reinterpret_cast<const uint16_t*>(row) + kk);
  }
}

template <class T, DType D>
float ScalarW(const std::byte* row, int64_t kk) {
  if constexpr (D == DType::kF32) {
    return reinterpret_cast<const float*>(row)[kk];
  } else if constexpr (D == DType::kF16) {
    return T::HalfToFloat(reinterpret_cast<const uint16_t*>(row)[kk]);
  } else {
    return Bf16Bits(reinterpret_cast<const uint16_t*>(row)[kk]);
  }
}

// The rows of the tile after the one at j0 (or row j0's own, already cached, past n_end):
// the tiles prefetch them as they go. Rows are short (a few KiB), so the hardware prefetcher,
// which restarts on every new row, alone leaves the decode case well below memory bandwidth.
template <int NR>
void NextTileRows(const std::byte* w, int64_t stride, int64_t j0, int64_t n_end,
                  const std::byte* (&next)[NR]) {
  for (int c = 0; c < NR; ++c) {
    const int64_t j = j0 + NR + c;
    next[c] = w + (j < n_end ? j : j0) * stride;
  }
}

// Accumulator sets per output: one, in every tile. Each element of y is then one FMA chain
// over k in order, whatever tile (how many rows of x, how many weight rows) computes it, so a
// row of y does not depend on how many rows x has: a request gets the same bits alone or in
// a batch (batch invariance). Several sets per small tile would hide FMA latency in decode,
// but change the order of the sum with the tile's shape.
constexpr int AccumulatorSets(int /*mr*/, int /*nr*/) { return 1; }

template <int V>
using IntTag = std::integral_constant<int, V>;

// Walks y[0:m, n_begin:n_end) in tiles: weight rows in panels of kPanelRows (reused from L2
// by every MR-row strip of x), NR weight rows per tile, then single rows for the panel's tail;
// tile(i, j, IntTag<MR>, IntTag<NR>) computes one tile.
//
// Quantized decode (m < 4) passes NR = 2: two weight rows at a time are two independent FMA
// chains (each output has one: AccumulatorSets), which measured 1.01-1.32x one row at a time
// with one chain, single-threaded (one row per tile had measured +10-50% over 4-row tiles when
// it still split k over four chains). Float weights keep kNr-row tiles, which measured better
// for them (fewer x loads per weight byte).
template <int MR, int NR, class Tile>
void ForEachTile(int64_t m, int64_t n_begin, int64_t n_end, Tile&& tile) {
  static_assert(MR == 4, "the strip switch below covers 1..4 rows");
  for (int64_t jb = n_begin; jb < n_end; jb += kPanelRows) {
    const int64_t je = MinI(n_end, jb + kPanelRows);
    for (int64_t i = 0; i < m; i += MR) {
      const int64_t mr = MinI(MR, m - i);
      int64_t j = jb;
      auto run = [&](auto nr) {
        switch (mr) {
          case 4: tile(i, j, IntTag<4>(), nr); break;
          case 3: tile(i, j, IntTag<3>(), nr); break;
          case 2: tile(i, j, IntTag<2>(), nr); break;
          default: tile(i, j, IntTag<1>(), nr); break;
        }
      };
      for (; j + NR <= je; j += NR) run(IntTag<NR>());
      for (; j < je; ++j) run(IntTag<1>());
    }
  }
}

// y[i0 + r, j0 + c] for r < MR, c < NR.
template <class T, DType D, int MR, int NR>
void GemmTile(const GemmArgs& a, int64_t i0, int64_t j0) {
  using F = typename T::F;
  constexpr int KU = AccumulatorSets(MR, NR);
  const float* xr[MR];
  const std::byte* wr[NR];
  const std::byte* next[NR];
  for (int r = 0; r < MR; ++r) xr[r] = a.x + (i0 + r) * a.ldx;
  for (int c = 0; c < NR; ++c) wr[c] = a.w + (j0 + c) * a.w_stride;
  NextTileRows<NR>(a.w, a.w_stride, j0, a.n_end, next);
  constexpr int64_t kElemBytes = D == DType::kF32 ? 4 : 2;
  F acc[KU][MR][NR];
  for (int u = 0; u < KU; ++u)
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < NR; ++c) acc[u][r][c] = T::Zero();
  auto step = [&](int u, int64_t kk) {
    F xv[MR];
    for (int r = 0; r < MR; ++r) xv[r] = T::Load(xr[r] + kk);
    for (int c = 0; c < NR; ++c) __builtin_prefetch(next[c] + kk * kElemBytes);
    for (int c = 0; c < NR; ++c) {
      const F wv = LoadW<T, D>(wr[c], kk);
      for (int r = 0; r < MR; ++r) acc[u][r][c] = T::Fma(xv[r], wv, acc[u][r][c]);
    }
  };
  const int64_t k_vec = a.k / T::kW * T::kW;
  int64_t kk = 0;
  for (; kk + KU * T::kW <= k_vec; kk += KU * T::kW) {
    for (int u = 0; u < KU; ++u) step(u, kk + u * T::kW);
  }
  for (; kk < k_vec; kk += T::kW) step(0, kk);
  for (int r = 0; r < MR; ++r) {
    for (int c = 0; c < NR; ++c) {
      for (int u = 1; u < KU; ++u) acc[0][r][c] = T::Add(acc[0][r][c], acc[u][r][c]);
      float s = T::Sum(acc[0][r][c]);
      for (int64_t k = k_vec; k < a.k; ++k) s += xr[r][k] * ScalarW<T, D>(wr[c], k);
      a.y[(i0 + r) * a.ldy + j0 + c] = s;
    }
  }
}

template <class T, DType D>
void GemmTyped(const GemmArgs& a) {
  auto tile = [&](int64_t i, int64_t j, auto mr, auto nr) {
    GemmTile<T, D, decltype(mr)::value, decltype(nr)::value>(a, i, j);
  };
  ForEachTile<T::kMr, T::kNr>(a.m, a.n_begin, a.n_end, tile);
}

template <class T>
void Gemm(const GemmArgs& a) {
  switch (a.dtype) {
    case DType::kF16: GemmTyped<T, DType::kF16>(a); break;
    case DType::kBF16: GemmTyped<T, DType::kBF16>(a); break;
    default: GemmTyped<T, DType::kF32>(a); break;
  }
}

template <class T, DType D>
float ScaleQ(const std::byte* row, int64_t b) {
  using Block = std::conditional_t<D == DType::kQ8_0, BlockQ8_0, BlockQ4_0>;
  return T::HalfToFloat(reinterpret_cast<const Block*>(row)[b].d);
}

template <class T, DType D, int MR, int NR>
void QGemmTile(const QGemmArgs& a, int64_t i0, int64_t j0) {
  using QF = typename T::QF;
  constexpr int KU = AccumulatorSets(MR, NR);
  const BlockQ8_0* xq[MR];
  const float* xd[MR];
  const int32_t* xc[MR];
  const std::byte* wr[NR];
  for (int r = 0; r < MR; ++r) {
    xq[r] = a.xq + (i0 + r) * a.k_blocks;
    xd[r] = a.xd + (i0 + r) * a.k_blocks;
    xc[r] = a.xcorr == nullptr ? nullptr : a.xcorr + (i0 + r) * a.k_blocks * 8;
  }
  for (int c = 0; c < NR; ++c) wr[c] = a.w + (j0 + c) * a.w_stride;
  const std::byte* next[NR];
  NextTileRows<NR>(a.w, a.w_stride, j0, a.n_end, next);
  constexpr int64_t kBlockBytes = D == DType::kQ8_0 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0);
  QF acc[KU][MR][NR];
  for (int u = 0; u < KU; ++u)
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < NR; ++c) acc[u][r][c] = T::QZero();
  auto step = [&](int u, int64_t b) {
    for (int c = 0; c < NR; ++c) __builtin_prefetch(next[c] + b * kBlockBytes);
    for (int c = 0; c < NR; ++c) {
      const float dw = ScaleQ<T, D>(wr[c], b);
      if constexpr (D == DType::kQ8_0) {
        const auto wv = T::LoadQ8(reinterpret_cast<const BlockQ8_0*>(wr[c]) + b);
        for (int r = 0; r < MR; ++r) {
          acc[u][r][c] = T::QFma(T::BlockDot(wv, xq[r][b].q), dw * xd[r][b], acc[u][r][c]);
        }
      } else {
        const auto wv = T::LoadQ4(reinterpret_cast<const BlockQ4_0*>(wr[c]) + b);
        for (int r = 0; r < MR; ++r) {
          acc[u][r][c] = T::QFma(T::BlockDotQ4(wv, xq[r][b].q, xc[r] + 8 * b),
                                 dw * xd[r][b], acc[u][r][c]);
        }
      }
    }
  };
  int64_t b = 0;
  for (; b + KU <= a.k_blocks; b += KU) {
    for (int u = 0; u < KU; ++u) step(u, b + u);
  }
  for (; b < a.k_blocks; ++b) step(0, b);
  for (int r = 0; r < MR; ++r) {
    for (int c = 0; c < NR; ++c) {
      for (int u = 1; u < KU; ++u) acc[0][r][c] = T::QAdd(acc[0][r][c], acc[u][r][c]);
      a.y[(i0 + r) * a.ldy + j0 + c] = T::QSum(acc[0][r][c]);
    }
  }
}

template <class T, DType D>
void QGemmTyped(const QGemmArgs& a) {
  auto tile = [&](int64_t i, int64_t j, auto mr, auto nr) {
    QGemmTile<T, D, decltype(mr)::value, decltype(nr)::value>(a, i, j);
  };
  if (a.m < T::kMr) {
    ForEachTile<T::kMr, 2>(a.m, a.n_begin, a.n_end, tile);
  } else {
    ForEachTile<T::kMr, T::kQNr>(a.m, a.n_begin, a.n_end, tile);
  }
}

template <class T>
void QGemm(const QGemmArgs& a) {
  if (a.dtype == DType::kQ4_0) {
    QGemmTyped<T, DType::kQ4_0>(a);
  } else {
    QGemmTyped<T, DType::kQ8_0>(a);
  }
}

// ---- Vector helpers for attention, norms and elementwise ops. ----

template <class T>
float Dot(const float* a, const float* b, int64_t n) {
  typename T::F acc0 = T::Zero(), acc1 = T::Zero();
  int64_t i = 0;
  for (; i + 2 * T::kW <= n; i += 2 * T::kW) {
    acc0 = T::Fma(T::Load(a + i), T::Load(b + i), acc0);
    acc1 = T::Fma(T::Load(a + i + T::kW), T::Load(b + i + T::kW), acc1);
  }
  for (; i + T::kW <= n; i += T::kW) acc0 = T::Fma(T::Load(a + i), T::Load(b + i), acc0);
  float s = T::Sum(T::Add(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

template <class T>
void Axpy(float alpha, const float* x, float* y, int64_t n) {
  const typename T::F av = T::Set1(alpha);
  int64_t i = 0;
  for (; i + T::kW <= n; i += T::kW) T::Store(y + i, T::Fma(av, T::Load(x + i), T::Load(y + i)));
  for (; i < n; ++i) y[i] += alpha * x[i];
}

template <class T>
void Scale(float alpha, float* x, int64_t n) {
  const typename T::F av = T::Set1(alpha);
  int64_t i = 0;
  for (; i + T::kW <= n; i += T::kW) T::Store(x + i, T::Mul(av, T::Load(x + i)));
  for (; i < n; ++i) x[i] *= alpha;
}

template <class T>
float SumSquares(const float* x, int64_t n) {
  return Dot<T>(x, x, n);
}

template <class T>
void ScaleMul(const float* x, float s, const float* w, int64_t n, float* y) {
  const typename T::F sv = T::Set1(s);
  int64_t i = 0;
  for (; i + T::kW <= n; i += T::kW) {
    T::Store(y + i, T::Mul(T::Mul(T::Load(x + i), sv), T::Load(w + i)));
  }
  for (; i < n; ++i) y[i] = x[i] * s * w[i];
}

template <class T>
void Add(float* x, const float* y, int64_t n) {
  int64_t i = 0;
  for (; i + T::kW <= n; i += T::kW) T::Store(x + i, T::Add(T::Load(x + i), T::Load(y + i)));
  for (; i < n; ++i) x[i] += y[i];
}

template <class T>
void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

// Eight independent accumulators keep enough loads in flight to saturate memory.
template <class T>
float ReadSum(const float* p, int64_t n) {
  using F = typename T::F;
  F acc[8];
  for (auto& v : acc) v = T::Zero();
  for (int64_t i = 0; i + 8 * T::kW <= n; i += 8 * T::kW) {
    for (int u = 0; u < 8; ++u) acc[u] = T::Add(acc[u], T::Load(p + i + u * T::kW));
  }
  for (int u = 1; u < 8; ++u) acc[0] = T::Add(acc[0], acc[u]);
  return T::Sum(acc[0]);
}

template <class T>
constexpr IsaKernels MakeKernels() {
  return IsaKernels{T::kName,    &Gemm<T>,     &QGemm<T>,        &T::QuantizeQ8,
                    &Dot<T>,     &Axpy<T>,     &Scale<T>,        &SumSquares<T>,
                    &ScaleMul<T>, &Add<T>,     &SiluMul<T>,      &ReadSum<T>};
}

}  // namespace
}  // namespace strata::kernels::cpu

// strata_moe_bench: the device experts (kernels/cuda/moe.cu, what the CUDA backend's MoeRoute
// and MoeFfn launch) on bf16 weights of two shapes:
//   mixtral:  hidden 4096, 8 experts of FFN 14336, top 2, softmax routing (Mixtral-8x7B's layer);
//   deepseek: hidden 7168, 256 experts of FFN 2048, top 8 from 4 of 8 groups, sigmoid scores
//             with a correction bias (DeepSeek-V3's routed experts).
// For decode sizes (1, 32, 128 tokens): GB/s = the weights of the experts the route reached
// (gate, up and down) plus x and y, over the time of the plan, both grouped matmuls and the
// combine, against the device-to-device copy bandwidth measured first; for prefill sizes (4096
// tokens): TFLOP/s = 6 * tokens * top_k * hidden * ffn over that time, against --peak_tflops.
// Router logits are random (uniform in [-2, 2)); routing is timed alone beside it. Times are
// medians of --iters runs after warm-up, with CUDA events; a non-finite output fails the run.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bench/cuda/bench_util.cuh"
#include "kernels/cuda/ops.h"

namespace strata::kernels::cuda {
namespace {

using bench::Buffer;
using bench::MedianMs;
using bench::Options;

struct Shape {
  const char* name;
  int64_t hidden, ffn, experts, top_k, groups, topk_groups;
  bool sigmoid;
};

void Check(const absl::Status& status, const char* what) {
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, std::string(status.message()).c_str());
    std::exit(1);
  }
}

// One shape's experts (every weight random, each kind in one allocation), run at several
// token counts.
class ExpertsBench {
 public:
  ExpertsBench(const Options& opt, const Shape& shape)
      : opt_(opt), s_(shape), matrix_(shape.ffn * shape.hidden) {
    for (auto& kind : weights_) {
      kind = std::make_unique<Buffer>(s_.experts * matrix_ * 2);
      bench::Random(kind->ptr, s_.experts * matrix_, static_cast<uint32_t>(&kind - weights_));
    }
    bias_ = std::make_unique<Buffer>(s_.experts * 4);
    std::vector<float> bias(s_.experts);
    std::mt19937 random(3);
    for (float& b : bias) b = std::uniform_real_distribution<float>(-0.1f, 0.1f)(random);
    BENCH_CHECK(cudaMemcpy(bias_->ptr, bias.data(), bias.size() * 4, cudaMemcpyHostToDevice));
  }

  void Run(double copy_gbs, int64_t tokens) {
    const int64_t slots = tokens * s_.top_k, e = s_.experts;
    Buffer x(tokens * s_.hidden * 2), y(tokens * s_.hidden * 2), logits(tokens * e * 4);
    Buffer ids(slots * 4), weights(slots * 4), offsets((e + 1) * 4), rows(slots * 4),
        positions(slots * 4), tiles(MoeMaxTiles(slots, e) * 8), chunk_tiles((MoeChunks(e) + 1) * 4),
        gated(slots * s_.ffn * 2), products(slots * s_.hidden * 4);
    bench::Random(x.ptr, tokens * s_.hidden, 5);
    std::vector<float> host_logits(tokens * e);
    std::mt19937 random(static_cast<uint32_t>(tokens));
    for (float& l : host_logits) l = std::uniform_real_distribution<float>(-2.0f, 2.0f)(random);
    BENCH_CHECK(cudaMemcpy(logits.ptr, host_logits.data(), host_logits.size() * 4,
                           cudaMemcpyHostToDevice));
    MoeRouteParams route;
    route.logits = static_cast<const float*>(logits.ptr);
    route.correction_bias = s_.sigmoid ? static_cast<const float*>(bias_->ptr) : nullptr;
    route.ids = static_cast<int32_t*>(ids.ptr);
    route.weights = static_cast<float*>(weights.ptr);
    route.num_tokens = tokens;
    route.num_experts = e;
    route.top_k = s_.top_k;
    route.num_groups = s_.groups;
    route.topk_groups = s_.topk_groups;
    route.sigmoid = s_.sigmoid;
    route.renormalize = true;
    const double route_ms = MedianMs(opt_.iters, [&] { Check(LaunchMoeRoute(route, nullptr), "route"); });

    auto* d_ids = static_cast<const int32_t*>(ids.ptr);
    auto* d_offsets = static_cast<int32_t*>(offsets.ptr);
    auto* d_tiles = static_cast<int32_t*>(tiles.ptr);
    auto* d_chunks = static_cast<int32_t*>(chunk_tiles.ptr);
    const MoePlanParams plan{d_ids, d_offsets, static_cast<int32_t*>(rows.ptr),
                             static_cast<int32_t*>(positions.ptr), d_tiles, d_chunks, slots,
                             s_.top_k, 0, e};
    std::vector<MoeMatMulParams> launches;
    for (int64_t first = 0; first < e; first += kMaxMoeLaunchExperts) {
      const int64_t n = std::min<int64_t>(e - first, kMaxMoeLaunchExperts);
      MoeMatMulParams up, down;
      for (MoeMatMulParams* p : {&up, &down}) {
        p->offsets = d_offsets;
        p->tiles = d_tiles;
        p->chunk_tiles = d_chunks;
        p->num_slots = slots;
        p->first = first;
        p->num_experts = n;
        p->a_elem = Elem::kBf16;
      }
      up.a = x.ptr;
      up.a_rows = static_cast<const int32_t*>(rows.ptr);
      up.out = gated.ptr;
      up.n = s_.ffn;
      up.k = s_.hidden;
      up.gated = true;
      up.out_elem = Elem::kBf16;
      down.a = gated.ptr;
      down.out = products.ptr;
      down.n = s_.hidden;
      down.k = s_.ffn;
      down.out_elem = Elem::kF32;
      for (int64_t i = 0; i < n; ++i) {
        up.w[i] = Matrix(0, first + i);
        up.up[i] = Matrix(1, first + i);
        down.w[i] = Matrix(2, first + i);
      }
      launches.push_back(up);
      launches.push_back(down);
    }
    const MoeCombineParams combine{static_cast<const float*>(products.ptr), d_ids,
                                   static_cast<const float*>(weights.ptr),
                                   static_cast<const int32_t*>(positions.ptr), y.ptr, tokens,
                                   s_.top_k, s_.hidden, Elem::kBf16};
    const double ms = MedianMs(opt_.iters, [&] {
      Check(LaunchMoePlan(plan, nullptr), "plan");
      for (const MoeMatMulParams& p : launches) Check(LaunchMoeMatMul(p, nullptr), "matmul");
      Check(LaunchMoeCombine(combine, nullptr), "combine");
    });

    std::vector<__nv_bfloat16> out(tokens * s_.hidden);
    BENCH_CHECK(cudaMemcpy(out.data(), y.ptr, out.size() * 2, cudaMemcpyDeviceToHost));
    for (const __nv_bfloat16 v : out) {
      if (!std::isfinite(__bfloat162float(v))) {
        std::fprintf(stderr, "moe %s tokens=%ld: a non-finite output\n", s_.name,
                     static_cast<long>(tokens));
        std::exit(1);
      }
    }
    std::vector<int32_t> chosen(slots);
    BENCH_CHECK(cudaMemcpy(chosen.data(), ids.ptr, slots * 4, cudaMemcpyDeviceToHost));
    const auto reached = static_cast<int64_t>(std::set<int32_t>(chosen.begin(), chosen.end()).size());
    const double bytes = 3.0 * reached * matrix_ * 2 + 2.0 * tokens * s_.hidden * 2;
    const double gbs = bytes / (ms * 1e-3) / 1e9;
    const double tflops = 6.0 * slots * matrix_ / (ms * 1e-3) / 1e12;
    std::printf("moe %-8s bf16 tokens=%-5ld top %ld of %ld, %ld experts reached: route %.3f ms; "
                "experts %.3f ms, %.0f GB/s (%.1f %% of the %.0f GB/s copy), %.1f TFLOP/s "
                "(%.1f %% of %.0f)\n",
                s_.name, static_cast<long>(tokens), static_cast<long>(s_.top_k),
                static_cast<long>(e), static_cast<long>(reached), route_ms, ms, gbs,
                100.0 * gbs / copy_gbs, copy_gbs, tflops, 100.0 * tflops / opt_.peak_tflops,
                opt_.peak_tflops);
  }

 private:
  // Expert e's matrix of kind 0 (gate), 1 (up) or 2 (down).
  const void* Matrix(int kind, int64_t e) const {
    return static_cast<const __nv_bfloat16*>(weights_[kind]->ptr) + e * matrix_;
  }

  Options opt_;
  Shape s_;
  int64_t matrix_;
  std::unique_ptr<Buffer> weights_[3];
  std::unique_ptr<Buffer> bias_;
};

}  // namespace
}  // namespace strata::kernels::cuda

int main(int argc, char** argv) {
  using namespace strata::kernels::cuda;
  strata::bench::Options opt;
  double copy = 0.0;
  if (const int code = strata::bench::Start(argc, argv, "strata_moe_bench", opt, copy); code != 0) {
    return code;
  }
  for (const Shape& shape : {Shape{"mixtral", 4096, 14336, 8, 2, 1, 1, false},
                             Shape{"deepseek", 7168, 2048, 256, 8, 8, 4, true}}) {
    ExpertsBench bench(opt, shape);
    for (int64_t tokens : {1, 32, 128, 4096}) bench.Run(copy, tokens);
  }
  return 0;
}

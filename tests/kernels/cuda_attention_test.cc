// Our CUDA attention kernels against a float64 reference of the same rounded inputs, on ragged
// paged batches (shuffled blocks, GQA, chunked prefill over a cached prefix, decode beside
// prefill, sliding windows, soft caps, contexts long enough for 32 decode splits, latent caches
// whose V is part of K), and batch
// invariance: a sequence's output bits do not depend on the rest of the batch. Skips without a
// CUDA device.
//
// Tolerance: ||out - ref|| / ||ref|| per (token, head) row under 1e-2 for bf16 and 2e-3 for
// fp16 (P is rounded to the input type before P.V and the output is rounded once; both are a
// few units of the type's last place). An fp8 cache's reference is its dequantized values
// (code times row scale); the kernels scale in f32 (the prefill kernel's codes are exact in
// bf16, its scales applied to S and P), within the same 1e-2 (a host emulation of the prefill
// kernel: worst 5.3e-3 over 60 seeds).
#include <cuda_runtime.h>

#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/attention.h"
#include "tests/kernels/cuda_attention_util.h"

namespace strata::kernels::cuda {
namespace {

using testing::AttentionShape;
using testing::DeviceBatch;
using testing::HostBatch;
using testing::MakeBatch;
using testing::SeqShape;

bool HaveDevice() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

// Whether device 0 runs the Hopper prefill kernel (compute capability 9.0, sm_90a code built).
bool HaveHopper() {
  return HaveDevice() && ComputeCapability(0) == 90 && HopperPrefillBuilt();
}
// The prefill paths this device has: the portable kernel, and the Hopper one on sm_90.
std::vector<bool> HopperModes() {
  if (HaveHopper()) return {false, true};
  return {false};
}

struct Case {
  std::string name;
  AttentionShape shape;
  bool hopper = false;  // prefill on the Hopper kernel (PagedAttentionArgs::hopper)
};

AttentionShape Shape(int64_t d, int64_t heads, int64_t kv_heads, int64_t block_size,
                     std::vector<SeqShape> seqs, AttentionDType dtype = AttentionDType::kBf16) {
  AttentionShape s;
  s.head_dim = d;
  s.num_heads = heads;
  s.num_kv_heads = kv_heads;
  s.block_size = block_size;
  s.dtype = dtype;
  s.seqs = std::move(seqs);
  return s;
}

std::vector<Case> Cases() {
  const std::vector<SeqShape> mixed = {{100, 100}, {64, 64}, {7, 300}, {1, 50}, {130, 1000}, {1, 1}};
  std::vector<Case> cases = {
      {"decode_d128_gqa4", Shape(128, 8, 2, 16, {{1, 1}, {1, 17}, {1, 255}, {1, 256}, {1, 1000}})},
      {"decode_d128_long_splits", Shape(128, 8, 2, 16, {{1, 8192}, {1, 33000}, {1, 300}})},
      {"decode_d64_mha", Shape(64, 4, 4, 32, {{1, 3}, {1, 700}})},
      {"decode_d256_gqa8", Shape(256, 16, 2, 16, {{1, 129}, {1, 2000}})},
      {"decode_d128_gqa7", Shape(128, 28, 4, 16, {{1, 40}, {1, 600}})},
      {"decode_d128_gqa16", Shape(128, 32, 2, 8, {{1, 513}})},
      {"prefill_d128_mixed", Shape(128, 8, 2, 16, mixed)},
      {"prefill_d64_mixed", Shape(64, 4, 1, 32, mixed)},
      {"prefill_d256_mixed", Shape(256, 4, 2, 16, mixed)},
      {"prefill_d128_fp16", Shape(128, 8, 4, 16, mixed, AttentionDType::kFp16)},
      {"decode_d128_fp16", Shape(128, 8, 4, 16, {{1, 5000}, {1, 9}}, AttentionDType::kFp16)},
      {"prefill_block1", Shape(128, 2, 1, 1, {{70, 70}, {3, 90}})},
      {"prefill_long", Shape(128, 4, 1, 16, {{2048, 4096}})},
      // The generic kernel (head dims without a tuned instance).
      {"generic_d16_mixed", Shape(16, 8, 2, 16, mixed)},
      {"generic_d8_decode_long", Shape(8, 8, 4, 16, {{1, 3000}, {1, 5}, {40, 40}})},
      {"generic_d80_fp16", Shape(80, 4, 2, 16, mixed, AttentionDType::kFp16)},
      {"generic_d96_block1", Shape(96, 4, 4, 1, {{30, 30}, {1, 77}})},
  };
  Case window{"window_37", Shape(128, 8, 2, 16, mixed)};
  window.shape.sliding_window = 37;
  cases.push_back(window);
  Case wide{"window_600_long_decode", Shape(128, 8, 2, 16, {{1, 9000}, {200, 900}})};
  wide.shape.sliding_window = 600;
  cases.push_back(wide);
  Case capped{"softcap_30", Shape(256, 8, 4, 16, mixed)};
  capped.shape.softcap = 30.0f;
  cases.push_back(capped);
  Case generic{"generic_d20_window_softcap", Shape(20, 4, 2, 16, mixed)};
  generic.shape.sliding_window = 25;
  generic.shape.softcap = 5.0f;
  cases.push_back(generic);
  // fp8 e4m3 caches (rows of mixed magnitudes, a scale each) beside bf16 activations: every
  // kernel, decode splits, windows, the generic kernel.
  for (Case c : std::vector<Case>{
           {"fp8_decode_d128_gqa4", Shape(128, 8, 2, 16, {{1, 1}, {1, 255}, {1, 1000}, {1, 9000}})},
           {"fp8_decode_d64_mha", Shape(64, 4, 4, 32, {{1, 3}, {1, 700}})},
           {"fp8_decode_d256_gqa8", Shape(256, 16, 2, 16, {{1, 129}, {1, 2000}})},
           {"fp8_prefill_d128_mixed", Shape(128, 8, 2, 16, mixed)},
           {"fp8_prefill_d64_mixed", Shape(64, 4, 1, 32, mixed)},
           {"fp8_prefill_d256_mixed", Shape(256, 4, 2, 16, mixed)},
           {"fp8_generic_d80_mixed", Shape(80, 4, 2, 16, mixed)},
           {"fp8_window_37", Shape(128, 8, 2, 16, mixed)}}) {
    c.shape.fp8_kv = true;
    if (c.name == "fp8_window_37") c.shape.sliding_window = 37;
    cases.push_back(c);
  }
  // Multi-head latent attention: one KV "head" of latent rows, V their first values (DeepSeek's
  // 512 + 64 with 16 query heads, and the fixture model's 32 + 8), bf16 and fp8 caches; and a
  // V stored apart with fewer dims than K. All on the generic kernel.
  struct VLayout {
    Case c;
    int64_t v_head_dim;
    bool v_in_k;
  };
  for (VLayout layout : std::vector<VLayout>{
           {{"latent_d576_v512_mixed",
             Shape(576, 16, 1, 16, {{1, 2000}, {30, 300}, {1, 1}, {7, 7}})},
            512, true},
           {{"latent_d40_v32_mixed", Shape(40, 8, 1, 16, mixed)}, 32, true},
           {{"fp8_latent_d576_v512", Shape(576, 16, 1, 16, {{1, 700}, {12, 40}})}, 512, true},
           {{"v_apart_d64_v32_mixed", Shape(64, 4, 2, 16, mixed)}, 32, false}}) {
    layout.c.shape.v_head_dim = layout.v_head_dim;
    layout.c.shape.v_in_k = layout.v_in_k;
    layout.c.shape.fp8_kv = layout.c.name.starts_with("fp8");
    cases.push_back(layout.c);
  }
  // The Hopper prefill kernel (sm_90 only): its head dims and dtypes, both warpgroups' rows,
  // every block size it loads (a box per block of 8..128 rows, a tile inside a larger block),
  // long prompts, windows and caps. Decode rows in these batches take the decode kernel.
  for (Case c : std::vector<Case>{
           {"hopper_d128_mixed", Shape(128, 8, 2, 16, mixed)},
           {"hopper_d64_mixed", Shape(64, 4, 1, 32, mixed)},
           {"hopper_d128_fp16", Shape(128, 8, 4, 16, mixed, AttentionDType::kFp16)},
           {"hopper_d64_fp16", Shape(64, 4, 4, 16, mixed, AttentionDType::kFp16)},
           {"hopper_block8", Shape(128, 4, 2, 8, {{300, 300}, {129, 700}, {2, 9}})},
           {"hopper_block128", Shape(128, 4, 2, 128, {{300, 300}, {129, 700}, {2, 9}})},
           {"hopper_block256", Shape(64, 4, 2, 256, {{300, 300}, {129, 700}, {2, 9}})},
           {"hopper_long", Shape(128, 4, 1, 16, {{2048, 4096}, {1000, 1000}})},
           {"hopper_window_37", Shape(128, 8, 2, 16, mixed)},
           {"hopper_window_600", Shape(128, 8, 2, 16, {{900, 2000}, {200, 900}})},
           {"hopper_softcap_30", Shape(128, 8, 4, 16, mixed)}}) {
    c.hopper = true;
    if (c.name == "hopper_window_37") c.shape.sliding_window = 37;
    if (c.name == "hopper_window_600") c.shape.sliding_window = 600;
    if (c.name == "hopper_softcap_30") c.shape.softcap = 30.0f;
    cases.push_back(c);
  }
  return cases;
}

class CudaAttentionTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
    if (GetParam().hopper && !HaveHopper()) {
      GTEST_SKIP() << "not a compute capability 9.0 device, or no sm_90a code built";
    }
    if (GetParam().hopper) {  // the case is the Hopper kernel's, not a fallback's
      const AttentionShape& shape = GetParam().shape;
      AttentionDesc desc;
      desc.head_dim = shape.head_dim;
      desc.dtype = shape.dtype;
      desc.sliding_window = shape.sliding_window > 0;
      desc.softcap = shape.softcap > 0.0f;
      desc.hopper = true;
      desc.sm = ComputeCapability(0);
      desc.block_size = shape.block_size;
      absl::StatusOr<const AttentionKernel*> kernel = FindAttentionKernel(desc);
      ASSERT_TRUE(kernel.ok()) << kernel.status();
      ASSERT_EQ((*kernel)->sm, 90) << GetParam().name << " takes " << (*kernel)->name;
    }
  }
};

TEST_P(CudaAttentionTest, MatchesFloat64Reference) {
  const AttentionShape& shape = GetParam().shape;
  for (uint32_t seed : {1u, 2u}) {  // fresh inputs each time
    const HostBatch host = MakeBatch(shape, seed);
    DeviceBatch device(host);
    device.args.hopper = GetParam().hopper;
    const absl::Status status = LaunchPagedAttention(device.args, shape.dtype, nullptr);
    ASSERT_TRUE(status.ok()) << status;
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << cudaGetErrorString(cudaGetLastError());
    const std::vector<uint16_t> got = device.Output();
    const std::vector<double> want = testing::ReferenceAttention(host);
    const double tolerance = shape.dtype == AttentionDType::kBf16 ? 1e-2 : 2e-3;
    const int64_t d = shape.v_dim();
    double worst = 0.0;
    int failures = 0;
    for (int64_t row = 0; row < host.num_tokens * shape.num_heads && failures < 5; ++row) {
      double err = 0.0, norm = 0.0;
      for (int64_t i = row * d; i < (row + 1) * d; ++i) {
        const double g = testing::FromHalfBits(got[i], shape.dtype);
        err += (g - want[i]) * (g - want[i]);
        norm += want[i] * want[i];
      }
      const double rel = std::sqrt(err / norm);
      worst = std::max(worst, std::isnan(rel) ? INFINITY : rel);
      if (!(rel <= tolerance)) {
        ADD_FAILURE() << GetParam().name << " seed " << seed << ": token "
                      << row / shape.num_heads << " head " << row % shape.num_heads
                      << " relative error " << rel << " (tolerance " << tolerance << ")";
        ++failures;
      }
    }
    RecordProperty("worst_relative_error_seed" + std::to_string(seed), std::to_string(worst));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaAttentionTest, ::testing::ValuesIn(Cases()),
                         [](const auto& param_info) { return param_info.param.name; });

// One sequence alone, then inside batches of 1..127 others of random shapes at a random index:
// its output bits are the same every time (prefill chunk and decode query each).
TEST(CudaAttentionInvariance, SequenceBitsIndependentOfBatch) {
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
  for (bool hopper : HopperModes()) {
    for (const SeqShape subject :
         {SeqShape{1, 5000}, SeqShape{70, 300}, SeqShape{300, 900}, SeqShape{1, 40}}) {
      std::vector<uint16_t> alone;
      std::mt19937 rng(subject.ctx);
      for (int others : {0, 1, 7, 63, 127}) {
        AttentionShape shape = Shape(128, 8, 2, 16, {});
        std::uniform_int_distribution<int> ctx_dist(1, 3000);
        for (int i = 0; i < others; ++i) {
          const int32_t ctx = ctx_dist(rng);
          shape.seqs.push_back({rng() % 3 == 0 ? std::min<int32_t>(ctx, 1 + rng() % 200) : 1, ctx});
        }
        const size_t index = others == 0 ? 0 : rng() % (others + 1);
        shape.seqs.insert(shape.seqs.begin() + index, subject);
        // The subject's inputs are the same in every batch: generate it alone, then splice.
        const HostBatch single = MakeBatch(Shape(128, 8, 2, 16, {subject}), 7);
        HostBatch batch = MakeBatch(shape, 100 + others);
        const int64_t row = 8 * 128;  // q elements per token
        std::copy(single.q.begin(), single.q.end(),
                  batch.q.begin() + batch.query_start[index] * row);
        const int64_t block_elems = 16 * 2 * 128;
        for (int64_t i = 0; i < single.max_blocks_per_seq; ++i) {
          const int32_t src = single.block_tables[i];
          const int32_t dst = batch.block_tables[index * batch.max_blocks_per_seq + i];
          std::copy_n(single.k.begin() + src * block_elems, block_elems,
                      batch.k.begin() + dst * block_elems);
          std::copy_n(single.v.begin() + src * block_elems, block_elems,
                      batch.v.begin() + dst * block_elems);
        }
        DeviceBatch device(batch);
        device.args.hopper = hopper;
        ASSERT_TRUE(LaunchPagedAttention(device.args, AttentionDType::kBf16, nullptr).ok());
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const std::vector<uint16_t> out = device.Output();
        const std::vector<uint16_t> mine(out.begin() + batch.query_start[index] * row,
                                         out.begin() + batch.query_start[index + 1] * row);
        if (others == 0) {
          alone = mine;
        } else {
          EXPECT_EQ(mine, alone) << "sequence (n_q " << subject.n_q << ", ctx " << subject.ctx
                                 << ") changed inside a batch of " << others + 1
                                 << (hopper ? " (hopper prefill)" : "");
        }
      }
    }
  }
}

// A prompt prefilled in one step and the same prompt in two chunks (the second reading the
// first's K/V from the cache) give the second chunk's rows the same bits, with and without a
// window: key tiles start at fixed multiples, and tiles a row cannot see add exact zeros.
TEST(CudaAttentionInvariance, ChunkedPrefillEqualsOneStep) {
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
  for (bool hopper : HopperModes()) {
    for (int64_t window : {int64_t{0}, int64_t{50}}) {
      AttentionShape whole = Shape(128, 8, 2, 16, {{200, 200}});
      whole.sliding_window = window;
      const HostBatch one = MakeBatch(whole, 11);
      AttentionShape tail_shape = whole;
      tail_shape.seqs = {{93, 200}};  // the last 93 tokens after a 107-token chunk
      HostBatch tail = one;
      tail.shape = tail_shape;
      tail.query_start = {0, 93};
      tail.num_tokens = 93;
      const int64_t row = 8 * 128;
      tail.q.assign(one.q.begin() + 107 * row, one.q.end());
      DeviceBatch d_one(one), d_tail(tail);
      d_one.args.hopper = d_tail.args.hopper = hopper;
      ASSERT_TRUE(LaunchPagedAttention(d_one.args, AttentionDType::kBf16, nullptr).ok());
      ASSERT_TRUE(LaunchPagedAttention(d_tail.args, AttentionDType::kBf16, nullptr).ok());
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const std::vector<uint16_t> all = d_one.Output();
      const std::vector<uint16_t> chunk = d_tail.Output();
      EXPECT_EQ(chunk, std::vector<uint16_t>(all.begin() + 107 * row, all.end()))
          << "window " << window << (hopper ? " (hopper prefill)" : "");
    }
  }
}

// A step's sequences run as several launches over ranges of them (what the CUDA backend does
// when the decode partials reserved at load hold fewer sequences than the step has) give
// every sequence the bits of one launch: decode splits and their reduction, prefill chunks
// over a cached prefix, for a tuned head dim and for the generic kernel, bf16 and fp8 caches.
TEST(CudaAttentionInvariance, SequenceRangesInSeparateLaunchesEqualOneLaunch) {
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
  const std::vector<SeqShape> seqs = {{1, 3000}, {40, 300}, {1, 17}, {1, 900},
                                      {64, 64},  {1, 5000}, {7, 260}};
  for (int64_t d : {int64_t{128}, int64_t{80}}) {
    for (bool fp8 : {false, true}) {
      AttentionShape shape = Shape(d, 8, 2, 16, seqs);
      shape.fp8_kv = fp8;
      const HostBatch host = MakeBatch(shape, 21);
      DeviceBatch whole(host), parts(host);
      ASSERT_TRUE(LaunchPagedAttention(whole.args, AttentionDType::kBf16, nullptr).ok());
      int64_t first = 0;
      for (int64_t count : {2, 3, 2}) {
        PagedAttentionArgs a = parts.args;
        a.num_seqs = count;
        a.block_tables += first * a.max_blocks_per_seq;
        a.query_start += first;
        a.context_lens += first;
        a.workspace_bytes = AttentionWorkspaceBytes(count, a.num_heads, a.head_dim, a.max_context_len);
        const absl::Status status = LaunchPagedAttention(a, AttentionDType::kBf16, nullptr);
        ASSERT_TRUE(status.ok()) << status;
        first += count;
      }
      ASSERT_EQ(first, static_cast<int64_t>(seqs.size()));
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      EXPECT_EQ(parts.Output(), whole.Output()) << "head dim " << d << (fp8 ? ", fp8 cache" : "");
    }
  }
}

}  // namespace
}  // namespace strata::kernels::cuda

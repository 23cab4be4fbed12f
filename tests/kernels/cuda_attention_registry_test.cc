// The attention registry, the decode split and argument validation: host code, runs without a
// device (nothing here launches a kernel).
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cuda/attention.h"

namespace strata::kernels::cuda {
namespace {

using ::testing::HasSubstr;

TEST(AttentionRegistry, FindsEveryBuiltInstance) {
  for (AttentionKind kind : {AttentionKind::kPrefill, AttentionKind::kDecode}) {
    for (int64_t d : {64, 128, 256}) {
      for (AttentionDType dtype : {AttentionDType::kBf16, AttentionDType::kFp16}) {
        AttentionDesc desc;
        desc.kind = kind;
        desc.head_dim = d;
        desc.dtype = dtype;
        desc.sliding_window = true;
        desc.softcap = true;
        absl::StatusOr<const AttentionKernel*> kernel = FindAttentionKernel(desc);
        ASSERT_TRUE(kernel.ok()) << desc.ToString() << ": " << kernel.status();
        const std::string want = std::string(kind == AttentionKind::kPrefill ? "prefill" : "decode") +
                                 "_d" + std::to_string(d) + "_" + AttentionDTypeName(dtype);
        EXPECT_EQ((*kernel)->name, want);
        EXPECT_EQ((*kernel)->head_dim, d);
      }
    }
  }
}

TEST(AttentionRegistry, OtherHeadDimsGoToTheSmallestGenericKernelThatTakesThem) {
  AttentionDesc desc;
  for (int64_t d : {8, 16, 20, 80, 96, 256, 288, 576}) {
    desc.head_dim = d;
    desc.dtype = d == 96 ? AttentionDType::kFp16 : AttentionDType::kBf16;
    absl::StatusOr<const AttentionKernel*> kernel = FindAttentionKernel(desc);
    ASSERT_TRUE(kernel.ok()) << d;
    EXPECT_EQ(std::string((*kernel)->name), d == 256  ? "prefill_d256_bf16"
                                            : d == 96 ? "generic_d256_fp16"
                                            : d > 256 ? "generic_d576_bf16"
                                                      : "generic_d256_bf16");
  }
}

// Latent attention (V the first v_head_dim values of K's rows) and a V of fewer dims than K go
// to the generic kernels, whatever the head dim: the tuned ones read V rows of head_dim.
TEST(AttentionRegistry, OtherVLayoutsGoToTheGenericKernels) {
  AttentionDesc desc;
  desc.kind = AttentionKind::kDecode;
  desc.head_dim = 576;
  desc.v_head_dim = 512;
  desc.v_in_k = true;
  for (bool fp8 : {false, true}) {
    desc.fp8_kv = fp8;
    absl::StatusOr<const AttentionKernel*> kernel = FindAttentionKernel(desc);
    ASSERT_TRUE(kernel.ok()) << kernel.status();
    EXPECT_EQ(std::string((*kernel)->name), fp8 ? "generic_d576_bf16_fp8kv" : "generic_d576_bf16");
  }
  desc.fp8_kv = false;
  desc.head_dim = 128;
  desc.v_head_dim = 128;  // equal dims, but V inside K
  absl::StatusOr<const AttentionKernel*> kernel = FindAttentionKernel(desc);
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  EXPECT_EQ(std::string((*kernel)->name), "generic_d256_bf16");
  desc.v_in_k = false;
  desc.v_head_dim = 64;  // V stored apart, of fewer dims
  kernel = FindAttentionKernel(desc);
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  EXPECT_EQ(std::string((*kernel)->name), "generic_d256_bf16");
  desc.v_head_dim = 128;  // the ordinary layout keeps its tuned kernel
  kernel = FindAttentionKernel(desc);
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  EXPECT_EQ(std::string((*kernel)->name), "decode_d128_bf16");
}

// The Hopper prefill kernel is taken only when asked for, on compute capability 9.0, for the
// head dims, dtypes and block sizes it has; everything else keeps the portable kernels.
TEST(AttentionRegistry, HopperPrefillOnlyWhereAskedOnSm90AndFitting) {
  if (!HopperPrefillBuilt()) GTEST_SKIP() << "built without sm_90a code: no Hopper rows";
  AttentionDesc desc;
  desc.sliding_window = true;
  desc.softcap = true;
  desc.block_size = 16;
  desc.sm = 90;
  auto name = [&desc] {
    absl::StatusOr<const AttentionKernel*> kernel = FindAttentionKernel(desc);
    return kernel.ok() ? std::string((*kernel)->name) : kernel.status().ToString();
  };
  EXPECT_EQ(name(), "prefill_d128_bf16");  // not asked
  desc.hopper = true;
  EXPECT_EQ(name(), "hopper_prefill_d128_bf16");
  desc.dtype = AttentionDType::kFp16;
  desc.head_dim = 64;
  EXPECT_EQ(name(), "hopper_prefill_d64_fp16");
  for (int64_t block : {8, 32, 64, 128, 256, 1024}) {
    desc.block_size = block;
    EXPECT_EQ(name(), "hopper_prefill_d64_fp16") << block;
  }
  for (int64_t block : {0, 1, 4, 12, 24, 48, 192}) {
    desc.block_size = block;
    EXPECT_EQ(name(), "prefill_d64_fp16") << block;
  }
  desc.block_size = 16;
  desc.sm = 80;
  EXPECT_EQ(name(), "prefill_d64_fp16");
  desc.sm = 100;  // sm_90a code does not run on later architectures
  EXPECT_EQ(name(), "prefill_d64_fp16");
  desc.sm = 90;
  desc.head_dim = 256;
  EXPECT_EQ(name(), "prefill_d256_fp16");
  desc.head_dim = 128;
  desc.dtype = AttentionDType::kBf16;
  desc.fp8_kv = true;
  EXPECT_EQ(name(), "prefill_d128_bf16_fp8kv");
  desc.fp8_kv = false;
  desc.kind = AttentionKind::kDecode;
  EXPECT_EQ(name(), "decode_d128_bf16");
  desc.kind = AttentionKind::kPrefill;
  desc.v_head_dim = 64;  // a latent layout
  EXPECT_EQ(name(), "generic_d256_bf16");
  desc.v_head_dim = 0;
  desc.head_dim = 640;  // the refusal lists the portable kernels' head dims once
  EXPECT_THAT(name(), HasSubstr("tuned head dims for this kind, dtype and V layout: 64, 128, 256;"));
}

TEST(AttentionRegistry, RefusesWhatNoKernelHasNamingIt) {
  AttentionDesc desc;
  desc.head_dim = 640;
  absl::StatusOr<const AttentionKernel*> kernel = FindAttentionKernel(desc);
  EXPECT_EQ(kernel.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(kernel.status().message(), HasSubstr("head_dim=640"));
  EXPECT_THAT(kernel.status().message(),
              HasSubstr("tuned head dims for this kind, dtype and V layout: 64, 128, 256; the "
                        "generic kernel takes up to 576"));

  desc.head_dim = 128;
  desc.causal = false;
  EXPECT_THAT(FindAttentionKernel(desc).status().message(), HasSubstr("only causal"));
  desc.causal = true;
  desc.paged = false;
  EXPECT_THAT(FindAttentionKernel(desc).status().message(), HasSubstr("paged cache only"));
  desc.paged = true;
  desc.v_head_dim = 512;  // more V dims than K's
  EXPECT_THAT(FindAttentionKernel(desc).status().message(),
              HasSubstr("v_head_dim must be in [1, head_dim]"));
}

TEST(AttentionDecodeSplit, CoversTheSpanInBoundedAlignedChunks) {
  EXPECT_EQ(DecodeSplit(0).splits, 0);
  for (int32_t span = 1; span <= 70000; span += (span < 2000 ? 1 : 97)) {
    const DecodeSplitInfo split = DecodeSplit(span);
    ASSERT_GE(split.splits, 1) << span;
    EXPECT_LE(split.splits, DecodeMaxSplits(span)) << span;
    EXPECT_LE(split.splits, kDecodeMaxSplits) << span;
    EXPECT_EQ(split.chunk % 32, 0) << span;
    EXPECT_LT(int64_t{split.splits - 1} * split.chunk, span) << span << ": an empty split";
    EXPECT_GE(int64_t{split.splits} * split.chunk, span) << span << ": keys left over";
    if (split.splits > 1) {
      EXPECT_GE(split.chunk, kDecodeMinSplitKeys / 2) << span;
    }
    // The workspace bound of a longer maximum covers this span.
    EXPECT_LE(split.splits, DecodeMaxSplits(span + 1000)) << span;
  }
  EXPECT_EQ(DecodeSplit(256).splits, 1);
  EXPECT_EQ(DecodeSplit(257).splits, 2);
  EXPECT_EQ(DecodeSplit(1 << 20).splits, kDecodeMaxSplits);
}

TEST(AttentionWorkspace, OnlyWhenAContextCanBeSplit) {
  EXPECT_EQ(AttentionWorkspaceBytes(64, 32, 128, 256), 0);
  EXPECT_EQ(AttentionWorkspaceBytes(64, 32, 128, 4096), 64 * 32 * 16 * (128 + 2) * 4);
  EXPECT_EQ(AttentionWorkspaceBytes(1, 1, 128, 1 << 20), 32 * (128 + 2) * 4);
  // Head dims without a tuned decode kernel run the generic one, which does not split.
  EXPECT_EQ(AttentionWorkspaceBytes(64, 16, 576, 1 << 20), 0);
  EXPECT_EQ(AttentionWorkspaceBytes(64, 32, 80, 4096), 0);
  // Nor do latent layouts, whatever the head dim: V inside K, or V narrower than K.
  EXPECT_EQ(AttentionWorkspaceBytes(64, 32, 128, 4096, 128, false), 64 * 32 * 16 * (128 + 2) * 4);
  EXPECT_EQ(AttentionWorkspaceBytes(64, 32, 128, 4096, 0, true), 0);
  EXPECT_EQ(AttentionWorkspaceBytes(64, 32, 128, 4096, 64, false), 0);
}

PagedAttentionArgs ValidArgs() {
  alignas(16) static char memory[64];  // never dereferenced: validation fails before a launch
  PagedAttentionArgs a;
  a.q = a.k_cache = a.v_cache = a.out = memory;
  a.block_tables = a.query_start = a.context_lens = reinterpret_cast<const int32_t*>(memory);
  a.num_seqs = 2;
  a.max_blocks_per_seq = 4;
  a.num_heads = 8;
  a.num_kv_heads = 2;
  a.head_dim = 128;
  a.block_size = 16;
  a.max_query_len = 10;
  a.max_context_len = 64;
  a.scale = 0.1f;
  return a;
}

TEST(AttentionValidation, NamesTheBadArgument) {
  EXPECT_TRUE(ValidateAttentionArgs(ValidArgs()).ok());
  struct Bad {
    std::string want;
    void (*mutate)(PagedAttentionArgs&);
  };
  const Bad cases[] = {
      {"num_heads 8 must be a positive multiple of num_kv_heads 3",
       [](PagedAttentionArgs& a) { a.num_kv_heads = 3; }},
      {"block_size * max_blocks_per_seq (64)", [](PagedAttentionArgs& a) { a.max_context_len = 65; }},
      {"max_query_len 10 and max_context_len 5", [](PagedAttentionArgs& a) { a.max_context_len = 5; }},
      {"a null tensor pointer", [](PagedAttentionArgs& a) { a.context_lens = nullptr; }},
      {"16-byte aligned",
       [](PagedAttentionArgs& a) { a.out = static_cast<char*>(a.out) + 2; }},
      {"scale 0 must be positive", [](PagedAttentionArgs& a) { a.scale = 0.0f; }},
      {"v_head_dim 129 in [0, head_dim]", [](PagedAttentionArgs& a) { a.v_head_dim = 129; }},
      {"a null tensor pointer",
       [](PagedAttentionArgs& a) {
         a.v_head_dim = 64;
         a.k_cache = nullptr;  // a latent cache's V is read from K
         a.v_in_k = true;
       }},
      {"num_seqs 70000", [](PagedAttentionArgs& a) { a.num_seqs = 70000; }},
      {"max_tokens -1 and num_blocks 0 must not be negative",
       [](PagedAttentionArgs& a) { a.max_tokens = -1; }},
      {"max_tokens 0 and num_blocks -2 must not be negative",
       [](PagedAttentionArgs& a) { a.num_blocks = -2; }},
      {"the Hopper prefill kernel needs num_blocks (the cache's blocks; given 0)",
       [](PagedAttentionArgs& a) { a.hopper = true; }},
      {"workspace of 0 bytes; 58240 needed for 2 sequences of up to 1600 tokens",
       [](PagedAttentionArgs& a) {
         a.max_blocks_per_seq = 100;
         a.max_context_len = 1600;
       }},
  };
  for (const Bad& bad : cases) {
    PagedAttentionArgs a = ValidArgs();
    bad.mutate(a);
    const absl::Status status = ValidateAttentionArgs(a);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad.want;
    EXPECT_THAT(status.message(), HasSubstr(bad.want));
  }
}

TEST(AttentionValidation, ALatentCacheNeedsNoVPointers) {
  PagedAttentionArgs a = ValidArgs();
  a.v_in_k = true;
  a.v_head_dim = 96;
  a.v_cache = nullptr;
  EXPECT_TRUE(ValidateAttentionArgs(a).ok());
  a.fp8_kv = true;
  a.k_scale = reinterpret_cast<const float*>(a.k_cache);
  EXPECT_TRUE(ValidateAttentionArgs(a).ok());
  a.k_scale = nullptr;
  EXPECT_THAT(ValidateAttentionArgs(a).message(), HasSubstr("needs its K and V scales"));
}

TEST(AttentionLaunch, AnUnbuiltHeadDimFailsBeforeAnyLaunch) {
  PagedAttentionArgs a = ValidArgs();
  a.head_dim = 640;
  a.max_context_len = 64;
  const absl::Status status = LaunchPagedAttention(a, AttentionDType::kBf16, nullptr);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("decode head_dim=640 bf16"));
}

TEST(AttentionLaunch, AnInstanceRefusesAnotherHeadDim) {
  AttentionDesc desc;
  desc.head_dim = 128;
  absl::StatusOr<const AttentionKernel*> kernel = FindAttentionKernel(desc);
  ASSERT_TRUE(kernel.ok());
  PagedAttentionArgs a = ValidArgs();
  a.head_dim = 64;
  const absl::Status status = (*kernel)->launch(a, nullptr);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("for head_dim 128 (V stored, of the same dim) given "
                                          "head_dim 64"));
  a.head_dim = 128;  // the right head dim, but V inside K
  a.v_in_k = true;
  EXPECT_THAT((*kernel)->launch(a, nullptr).message(), HasSubstr("V in K"));
}

// The Hopper instance checks what its tensor maps need before touching the device: a block size
// it tiles, and the cache's block count.
TEST(AttentionLaunch, TheHopperInstanceRefusesWhatItsTensorMapsCannotTake) {
  if (!HopperPrefillBuilt()) GTEST_SKIP() << "built without sm_90a code: no Hopper rows";
  AttentionDesc desc;
  desc.hopper = true;
  desc.sm = 90;
  desc.block_size = 16;
  absl::StatusOr<const AttentionKernel*> kernel = FindAttentionKernel(desc);
  ASSERT_TRUE(kernel.ok());
  ASSERT_EQ(std::string((*kernel)->name), "hopper_prefill_d128_bf16");
  PagedAttentionArgs a = ValidArgs();
  a.block_size = 12;
  EXPECT_THAT((*kernel)->launch(a, nullptr).message(), HasSubstr("given block size 12"));
  a.block_size = 16;
  a.num_blocks = 0;
  EXPECT_THAT((*kernel)->launch(a, nullptr).message(), HasSubstr("num_blocks 0 must be positive"));
  a.num_blocks = int64_t{1} << 28;  // 2^32 slots
  EXPECT_THAT((*kernel)->launch(a, nullptr).message(), HasSubstr("fewer than 2^31 slots"));
}

}  // namespace
}  // namespace strata::kernels::cuda

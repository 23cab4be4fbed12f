// Reads the real models and vocabularies under ../shared/data (skipped when absent).
#include <array>

#include "common/formats/gguf.h"
#include "common/formats/safetensors.h"
#include "common/formats/weight_source.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"

namespace strata {
namespace {

constexpr std::array<const char*, 7> kFixtures = {"deepseek2", "gemma2", "llama", "mistral",
                                                  "mixtral",   "phi3",   "qwen2"};

TEST(RealFilesTest, Stories260KGguf) {
  STRATA_SHARED_DATA_OR_SKIP(path, "models/stories260K/stories260K.gguf");
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const GgufFile& gguf = **file;
  EXPECT_EQ(gguf.version(), 3u);
  EXPECT_EQ(gguf.TensorNames().size(), 48u);
  EXPECT_EQ(*gguf.GetString("general.architecture").value(), "llama");
  EXPECT_EQ(*gguf.GetInt("llama.context_length").value(), 512);
  EXPECT_EQ(*gguf.GetInt("llama.embedding_length").value(), 64);
  EXPECT_EQ(*gguf.GetInt("llama.block_count").value(), 5);
  EXPECT_EQ(*gguf.GetInt("llama.attention.head_count_kv").value(), 4);
  EXPECT_EQ(gguf.GetStringArray("tokenizer.ggml.tokens").value()->size(), 512u);
  const TensorView embd = *gguf.Get("token_embd.weight");
  EXPECT_EQ(embd.dtype, DType::kF32);
  EXPECT_EQ(embd.shape, (Shape{512, 64}));
  EXPECT_EQ(gguf.Get("blk.0.ffn_gate.weight")->shape, (Shape{172, 64}));
  EXPECT_EQ(gguf.Get("blk.4.attn_k.weight")->shape, (Shape{32, 64}));
  // output.weight is an explicit copy of the embedding.
  const TensorView out = *gguf.Get("output.weight");
  EXPECT_EQ(0, std::memcmp(out.data, embd.data, embd.RowBytes() * embd.Rows()));
}

TEST(RealFilesTest, Stories260KSafetensorsMatchesGguf) {
  STRATA_SHARED_DATA_OR_SKIP(hf, "models/stories260K/hf");
  STRATA_SHARED_DATA_OR_SKIP(gguf_path, "models/stories260K/stories260K.gguf");
  auto source = OpenWeightSource(hf);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ((*source)->TensorNames().size(), 47u);
  const TensorView embed = *(*source)->Get("model.embed_tokens.weight");
  EXPECT_EQ(embed.shape, (Shape{512, 64}));
  EXPECT_EQ((*source)->Get("model.layers.0.mlp.gate_proj.weight")->shape, (Shape{172, 64}));
  auto st = SafetensorsFile::Open(hf / "model.safetensors");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ((*st)->metadata().at("format"), "pt");
  auto gguf = OpenWeightSource(gguf_path);
  ASSERT_TRUE(gguf.ok());
  const TensorView embd = *(*gguf)->Get("token_embd.weight");
  // Same weights in both layouts; rows 100..110 sliced out of each.
  const TensorView a = *embed.SliceRows(100, 110);
  const TensorView b = *embd.SliceRows(100, 110);
  EXPECT_EQ(0, std::memcmp(a.data, b.data, a.RowBytes() * 10));
}

TEST(RealFilesTest, FixturesReadInBothFormats) {
  for (const char* family : kFixtures) {
    SCOPED_TRACE(family);
    const std::string dir = std::string("fixtures/") + family;
    STRATA_SHARED_DATA_OR_SKIP(gguf_path, dir + "/model.gguf");
    STRATA_SHARED_DATA_OR_SKIP(st_path, dir + "/hf/model.safetensors");
    auto gguf = GgufFile::Open(gguf_path);
    ASSERT_TRUE(gguf.ok()) << gguf.status();
    auto st = SafetensorsFile::Open(st_path);
    ASSERT_TRUE(st.ok()) << st.status();
    const std::string arch = *(*gguf)->GetString("general.architecture").value();
    EXPECT_FALSE(arch.empty());
    const TensorView embd = *(*gguf)->Get("token_embd.weight");
    const TensorView embed = *(*st)->Get("model.embed_tokens.weight");
    EXPECT_EQ(embd.shape, embed.shape);
    EXPECT_EQ(embd.shape[0], std::string(family) == "phi3" ? 528 : 512);
    // Gemma 2 scales embeddings at run time, not in the file, so every family matches.
    EXPECT_EQ(0, std::memcmp(embd.data, embed.data, embd.RowBytes() * embd.Rows()));
    for (const std::string& name : (*gguf)->TensorNames()) {
      const TensorView v = *(*gguf)->Get(name);
      EXPECT_EQ(v.dtype, DType::kF32) << name;
      EXPECT_LE(v.shape.size(), 4u);
    }
  }
}

TEST(RealFilesTest, VocabOnlyGguf) {
  STRATA_SHARED_DATA_OR_SKIP(path, "tokenizers/llamacpp/ggml-vocab-llama-spm.gguf");
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->TensorNames().empty());
  EXPECT_EQ(*(*file)->GetString("general.architecture").value(), "llama");
  EXPECT_EQ(*(*file)->GetString("tokenizer.ggml.model").value(), "llama");
  const auto tokens = *(*file)->GetStringArray("tokenizer.ggml.tokens").value();
  ASSERT_EQ(tokens.size(), 32000u);
  EXPECT_EQ(tokens[0], "<unk>");
  EXPECT_EQ((*(*file)->GetFloatArray("tokenizer.ggml.scores").value()).size(), 32000u);
  EXPECT_EQ((*(*file)->GetIntArray("tokenizer.ggml.token_type").value()).size(), 32000u);
}

TEST(RealFilesTest, TinyRandomF16Gguf) {
  STRATA_SHARED_DATA_OR_SKIP(path, "models/llama-2-tiny-random.gguf");
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->TensorNames().size(), 12u);
  const TensorView embd = *(*file)->Get("token_embd.weight");
  EXPECT_EQ(embd.dtype, DType::kF16);
  EXPECT_EQ(embd.shape, (Shape{32000, 8}));
}

}  // namespace
}  // namespace strata

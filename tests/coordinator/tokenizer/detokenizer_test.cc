// Decode round trips and streaming detokenization on multi-byte text (emoji, CJK, byte
// fallback), for both loading paths (tokenizer.model and GGUF).
#include <memory>
#include <string>
#include <vector>

#include "coordinator/tokenizer/incremental_detokenizer.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "coordinator/tokenizer/utf8.h"
#include "gtest/gtest.h"
#include "tests/coordinator/tokenizer/vocab_vectors.h"
#include "tests/testing/shared_data.h"

namespace strata::tokenizer {
namespace {

const std::vector<std::string>& SampleTexts() {
  static const auto* texts = new std::vector<std::string>{
      "Hello world",
      " leading space and  double  spaces ",
      "emoji: \xF0\x9F\xA6\x99\xF0\x9F\x9A\x80 and \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9",
      "CJK: \xE7\x8A\xAC\xE3\x81\xA8\xE7\x8C\xAB \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4",
      "mixed\n\ttabs\nand newlines\n\n",
      "\xE1\x80\x80\xE1\x80\x81 rare script (byte fallback) \xF0\x9D\x94\xB8",
  };
  return *texts;
}

struct Source {
  std::string name;
  std::string path;
};

class DetokenizerTest : public ::testing::TestWithParam<Source> {
 protected:
  std::unique_ptr<Tokenizer> Load(const std::string& path) {
    auto tokenizer = LoadTokenizer(path);
    EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
    return tokenizer.ok() ? std::move(*tokenizer) : nullptr;
  }
};

TEST_P(DetokenizerTest, DecodeInvertsEncode) {
  STRATA_SHARED_DATA_OR_SKIP(path, GetParam().path);
  auto tokenizer = Load(path.string());
  ASSERT_NE(tokenizer, nullptr);
  for (const std::string& text : SampleTexts()) {
    auto ids = tokenizer->Encode(text, /*add_special=*/true);
    ASSERT_TRUE(ids.ok()) << ids.status();
    ASSERT_FALSE(ids->empty());
    EXPECT_EQ(ids->front(), tokenizer->bos_id());
    auto decoded = tokenizer->Decode(*ids, /*skip_special=*/true);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, text);
  }
}

TEST_P(DetokenizerTest, IncrementalChunksAreValidUtf8AndConcatenateToDecode) {
  STRATA_SHARED_DATA_OR_SKIP(path, GetParam().path);
  auto tokenizer = Load(path.string());
  ASSERT_NE(tokenizer, nullptr);
  for (const std::string& text : SampleTexts()) {
    auto ids = tokenizer->Encode(text, /*add_special=*/true);
    ASSERT_TRUE(ids.ok());
    for (bool skip_special : {true, false}) {
      IncrementalDetokenizer detok(*tokenizer, skip_special);
      std::string streamed;
      for (int32_t id : *ids) {
        auto chunk = detok.Add(id);
        ASSERT_TRUE(chunk.ok()) << chunk.status();
        EXPECT_TRUE(IsValidUtf8(*chunk)) << "chunk after id " << id;
        streamed += *chunk;
      }
      auto rest = detok.Finish();
      ASSERT_TRUE(rest.ok());
      streamed += *rest;
      auto full = tokenizer->Decode(*ids, skip_special);
      ASSERT_TRUE(full.ok());
      EXPECT_EQ(streamed, *full) << "skip_special=" << skip_special;
    }
  }
}

TEST_P(DetokenizerTest, ByteFallbackCharacterIsHeldUntilComplete) {
  STRATA_SHARED_DATA_OR_SKIP(path, GetParam().path);
  auto tokenizer = Load(path.string());
  ASSERT_NE(tokenizer, nullptr);
  // U+1D538 (4 bytes) is not in these vocabularies: it is encoded as 4 byte pieces.
  auto ids = tokenizer->Encode("\xF0\x9D\x94\xB8", /*add_special=*/false);
  ASSERT_TRUE(ids.ok());
  ASSERT_GE(ids->size(), 4u);
  IncrementalDetokenizer detok(*tokenizer, /*skip_special=*/true);
  std::string streamed;
  for (size_t i = 0; i < ids->size(); ++i) {
    auto chunk = detok.Add((*ids)[i]);
    ASSERT_TRUE(chunk.ok());
    if (i + 1 < ids->size()) {
      EXPECT_EQ(*chunk, "") << "emitted a partial character at " << i;
    }
    streamed += *chunk;
  }
  EXPECT_EQ(streamed, "\xF0\x9D\x94\xB8");
}

TEST_P(DetokenizerTest, IncompleteBytesDecodeAsReplacementCharacter) {
  STRATA_SHARED_DATA_OR_SKIP(path, GetParam().path);
  auto tokenizer = Load(path.string());
  ASSERT_NE(tokenizer, nullptr);
  auto ids = tokenizer->Encode("\xF0\x9D\x94\xB8", /*add_special=*/false);
  ASSERT_TRUE(ids.ok());
  ASSERT_GE(ids->size(), 4u);
  const std::vector<int32_t> truncated(ids->end() - 3, ids->end());  // drops the lead byte
  auto text = tokenizer->Decode(truncated, /*skip_special=*/true);
  ASSERT_TRUE(text.ok());
  EXPECT_TRUE(IsValidUtf8(*text));
  EXPECT_NE(text->find("\xEF\xBF\xBD"), std::string::npos);
  IncrementalDetokenizer detok(*tokenizer, /*skip_special=*/true);
  std::string streamed;
  for (int32_t id : truncated) streamed += detok.Add(id).value();
  streamed += detok.Finish().value();
  EXPECT_EQ(streamed, *text);
}

TEST_P(DetokenizerTest, SpecialTokensAndBadIds) {
  STRATA_SHARED_DATA_OR_SKIP(path, GetParam().path);
  auto tokenizer = Load(path.string());
  ASSERT_NE(tokenizer, nullptr);
  const int32_t bos = tokenizer->bos_id();
  ASSERT_GE(bos, 0);
  EXPECT_TRUE(tokenizer->IsSpecial(bos));
  for (int32_t eos : tokenizer->eos_ids()) EXPECT_TRUE(tokenizer->IsSpecial(eos));
  auto hello = tokenizer->Encode("Hello", /*add_special=*/false);
  ASSERT_TRUE(hello.ok());
  EXPECT_FALSE(tokenizer->IsSpecial(hello->front()));
  std::vector<int32_t> ids = {bos};
  ids.insert(ids.end(), hello->begin(), hello->end());
  EXPECT_EQ(tokenizer->Decode(ids, /*skip_special=*/true).value(), "Hello");
  EXPECT_EQ(tokenizer->Decode(ids, /*skip_special=*/false).value(),
            tokenizer->TokenToPiece(bos).value() + " Hello");
  EXPECT_FALSE(tokenizer->Decode({{tokenizer->vocab_size()}}, true).ok());
  EXPECT_FALSE(tokenizer->Decode({{-1}}, true).ok());
  EXPECT_FALSE(tokenizer->TokenToPiece(tokenizer->vocab_size()).ok());
  EXPECT_EQ(tokenizer->Encode("", /*add_special=*/true).value(), std::vector<int32_t>{bos});
  EXPECT_TRUE(tokenizer->Encode("", /*add_special=*/false).value().empty());
}

INSTANTIATE_TEST_SUITE_P(
    Sources, DetokenizerTest,
    ::testing::Values(Source{"llama_spm_gguf", "tokenizers/llamacpp/ggml-vocab-llama-spm.gguf"},
                      Source{"llama2_model", "tokenizers/sentencepiece/llama2.model"},
                      Source{"mistral_v3_model", "tokenizers/sentencepiece/mistral-v3.model"}),
    [](const ::testing::TestParamInfo<Source>& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace strata::tokenizer

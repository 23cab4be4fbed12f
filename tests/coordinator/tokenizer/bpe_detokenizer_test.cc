// Streaming detokenization with the byte-level and SentencePiece-style BPE tokenizers: every
// chunk IncrementalDetokenizer emits is valid UTF-8 and the chunks concatenate to Decode of the
// same ids (which the reference tests check against transformers.js), with and without prompt
// context. Also the GGUF pre-tokenizer table's error for names it does not know.
#include <memory>
#include <string>
#include <vector>

#include "coordinator/tokenizer/gguf_bpe_vocab.h"
#include "coordinator/tokenizer/incremental_detokenizer.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "coordinator/tokenizer/utf8.h"
#include "gtest/gtest.h"
#include "tests/coordinator/tokenizer/random_texts.h"
#include "tests/coordinator/tokenizer/vocab_vectors.h"
#include "tests/testing/shared_data.h"

namespace strata::tokenizer {
namespace {

class BpeDetokenizerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string path;
    if (GetParam().ends_with(".gguf")) {
      path = ::strata::testing::SharedDataPath(GetParam()).string();
    } else {
      path = testing::HfTokenizerDir(GetParam()).string();
    }
    if (path.empty()) GTEST_SKIP() << "shared data for " << GetParam() << " not found";
    auto tokenizer = LoadTokenizer(path);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer);
  }

  // Streams ids[prompt..] after `prompt` ids of context; returns the concatenated chunks.
  std::string Stream(const std::vector<int32_t>& ids, size_t prompt, bool skip_special) {
    IncrementalDetokenizer detok(*tokenizer_, skip_special,
                                 absl::MakeConstSpan(ids).subspan(0, prompt));
    std::string out;
    for (size_t i = prompt; i < ids.size(); ++i) {
      auto chunk = detok.Add(ids[i]);
      EXPECT_TRUE(chunk.ok()) << chunk.status();
      EXPECT_TRUE(IsValidUtf8(*chunk)) << "chunk after id " << i;
      out += *chunk;
    }
    auto rest = detok.Finish();
    EXPECT_TRUE(rest.ok());
    return out + *rest;
  }

  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_P(BpeDetokenizerTest, ChunksConcatenateToDecode) {
  for (const std::string& text : testing::RandomTexts(100, 10, /*seed=*/99)) {
    auto ids = tokenizer_->Encode(text, /*add_special=*/true);
    ASSERT_TRUE(ids.ok()) << ids.status();
    for (bool skip_special : {false, true}) {
      auto full = tokenizer_->Decode(*ids, skip_special);
      ASSERT_TRUE(full.ok());
      EXPECT_EQ(Stream(*ids, 0, skip_special), *full) << "text: '" << text << "'";
      const size_t prompt = ids->size() / 2;
      auto head = tokenizer_->Decode(absl::MakeConstSpan(*ids).subspan(0, prompt), skip_special);
      ASSERT_TRUE(head.ok());
      if (full->starts_with(*head)) {  // holds unless the cut splits a character
        EXPECT_EQ(Stream(*ids, prompt, skip_special), full->substr(head->size()))
            << "text: '" << text << "'";
      }
    }
  }
}

TEST_P(BpeDetokenizerTest, InvalidUtf8DecodesToReplacementCharacters) {
  // A lone continuation byte and a truncated 4-byte sequence are encoded as U+FFFD.
  auto ids = tokenizer_->Encode(
      "a\x80"
      "b\xF0\x9F\xA6",
      /*add_special=*/false);
  ASSERT_TRUE(ids.ok());
  auto text = tokenizer_->Decode(*ids, /*skip_special=*/false);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text,
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
}

INSTANTIATE_TEST_SUITE_P(Models, BpeDetokenizerTest,
                         ::testing::Values("llama3", "qwen3", "gemma3",
                                           "tokenizers/llamacpp/ggml-vocab-gpt-2.gguf"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           return param_info.param.ends_with(".gguf") ? std::string("gguf_gpt2")
                                                                      : param_info.param;
                         });

TEST(GgufPreTokenizerTest, UnknownNameIsUnimplementedNamingIt) {
  auto pre = GgufPreTokenizerFor("tekken-unknown", "model.gguf");
  ASSERT_FALSE(pre.ok());
  EXPECT_EQ(pre.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(pre.status().message().find("tekken-unknown"), std::string::npos);
  EXPECT_NE(pre.status().message().find("model.gguf"), std::string::npos);
}

}  // namespace
}  // namespace strata::tokenizer

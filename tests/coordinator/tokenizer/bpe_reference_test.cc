// BpeTokenizer against transformers.js (@huggingface/transformers, run by tests/node/
// tokenize.mjs) on a few hundred deterministic Unicode-heavy strings, for the real Llama 3,
// Qwen 3 and Gemma 3 tokenizer.json files: ids with and without special tokens added, special
// tokens written in chat-template text, and decoding (with and without skipping specials).
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "boost/json.hpp"
#include "coordinator/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/coordinator/tokenizer/random_texts.h"
#include "tests/coordinator/tokenizer/vocab_vectors.h"
#include "tests/testing/node_reference.h"
#include "tests/testing/shared_data.h"

namespace strata::tokenizer {
namespace {

namespace json = boost::json;
using testing::HfTokenizerDir;
using testing::RandomTexts;

constexpr int kTexts = 300;

struct Reference {
  std::vector<std::vector<int32_t>> ids;               // add_special_tokens = false
  std::vector<std::vector<int32_t>> ids_with_special;  // add_special_tokens = true
  std::vector<std::string> decoded;
};

std::vector<std::vector<int32_t>> IdLists(const json::value& value) {
  std::vector<std::vector<int32_t>> lists;
  for (const json::value& list : value.as_array()) {
    std::vector<int32_t>& ids = lists.emplace_back();
    for (const json::value& id : list.as_array())
      ids.push_back(static_cast<int32_t>(id.to_number<int64_t>()));
  }
  return lists;
}

// Runs tokenize.mjs; fails the test (returns an empty Reference) on error.
Reference RunTransformersJs(const std::string& dir, const std::vector<std::string>& texts,
                            const std::vector<std::vector<int32_t>>& decode, bool skip_special) {
  json::object request;
  request["tokenizer_dir"] = dir;
  json::array& text_array = request["texts"].emplace_array();
  for (const std::string& text : texts) text_array.emplace_back(text);
  json::array& decode_array = request["decode"].emplace_array();
  for (const auto& ids : decode) decode_array.emplace_back(json::value_from(ids));
  request["skip_special_tokens"] = skip_special;
  auto output = ::strata::testing::RunNodeReference("tokenize.mjs", json::serialize(request));
  EXPECT_TRUE(output.ok()) << output.status();
  if (!output.ok()) return {};
  const json::object result = json::parse(*output).as_object();
  Reference reference;
  reference.ids = IdLists(result.at("ids"));
  reference.ids_with_special = IdLists(result.at("ids_with_special"));
  for (const json::value& s : result.at("decoded").as_array()) {
    reference.decoded.emplace_back(s.as_string().data(), s.as_string().size());
  }
  return reference;
}

struct Model {
  std::string name;
  std::vector<std::string> specials;  // special tokens to write into chat-like text
};

class BpeReferenceTest : public ::testing::TestWithParam<Model> {
 protected:
  void SetUp() override {
    STRATA_NODE_REFERENCES_OR_SKIP();
    dir_ = HfTokenizerDir(GetParam().name).string();
    if (dir_.empty()) GTEST_SKIP() << "shared data tokenizers/hf/" << GetParam().name << " missing";
    auto tokenizer = LoadTokenizer(dir_);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer);
  }

  std::string dir_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_P(BpeReferenceTest, RandomTextsEncodeAndDecodeLikeTransformersJs) {
  const std::vector<std::string> texts = RandomTexts(kTexts, 12, /*seed=*/20240611);
  std::vector<std::vector<int32_t>> ours;
  for (const std::string& text : texts) {
    auto ids = tokenizer_->Encode(text, /*add_special=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    ours.push_back(*ids);
  }
  const Reference ref = RunTransformersJs(dir_, texts, ours, /*skip_special=*/false);
  ASSERT_EQ(ref.ids.size(), texts.size());
  int encoded = 0, with_special = 0, decoded = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(ours[i], ref.ids[i]) << "text: '" << texts[i] << "'";
    encoded += ours[i] == ref.ids[i];
    auto special = tokenizer_->Encode(texts[i], /*add_special=*/true);
    ASSERT_TRUE(special.ok());
    EXPECT_EQ(*special, ref.ids_with_special[i]) << "text: '" << texts[i] << "'";
    with_special += *special == ref.ids_with_special[i];
    auto text = tokenizer_->Decode(ours[i], /*skip_special=*/false);
    ASSERT_TRUE(text.ok());
    EXPECT_EQ(*text, ref.decoded[i]) << "ids of '" << texts[i] << "'";
    decoded += *text == ref.decoded[i];
  }
  std::cout << "[ node     ] " << GetParam().name << ": encode " << encoded << "/" << kTexts
            << ", encode+special " << with_special << "/" << kTexts << ", decode " << decoded << "/"
            << kTexts << "\n";
}

TEST_P(BpeReferenceTest, SpecialTokensInTextLikeTransformersJs) {
  // Chat-template-like text: special tokens between random texts.
  const std::vector<std::string> parts = RandomTexts(120, 4, /*seed=*/7);
  const std::vector<std::string>& specials = GetParam().specials;
  std::vector<std::string> texts;
  for (size_t i = 0; i + 2 < parts.size(); i += 3) {
    const std::string& a = specials[i % specials.size()];
    const std::string& b = specials[(i / 3) % specials.size()];
    texts.push_back(a + parts[i] + b + parts[i + 1] + "\n" + a + parts[i + 2]);
  }
  std::vector<std::vector<int32_t>> ours;
  for (const std::string& text : texts) {
    auto ids = tokenizer_->EncodeWithSpecialTokens(text, /*add_special=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    ours.push_back(*ids);
  }
  const Reference ref = RunTransformersJs(dir_, texts, ours, /*skip_special=*/true);
  ASSERT_EQ(ref.ids.size(), texts.size());
  int encoded = 0, decoded = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(ours[i], ref.ids[i]) << "text: '" << texts[i] << "'";
    encoded += ours[i] == ref.ids[i];
    auto text = tokenizer_->Decode(ours[i], /*skip_special=*/true);
    ASSERT_TRUE(text.ok());
    EXPECT_EQ(*text, ref.decoded[i]) << "ids of '" << texts[i] << "'";
    decoded += *text == ref.decoded[i];
  }
  std::cout << "[ node     ] " << GetParam().name << " special tokens: encode " << encoded << "/"
            << texts.size() << ", decode(skip_special) " << decoded << "/" << texts.size() << "\n";
}

INSTANTIATE_TEST_SUITE_P(
    HuggingFace, BpeReferenceTest,
    ::testing::Values(Model{"llama3", {"<|begin_of_text|>", "<|start_header_id|>", "<|eot_id|>"}},
                      Model{"qwen3", {"<|im_start|>", "<|im_end|>", "<think>", "<|endoftext|>"}},
                      Model{"gemma3",
                            {"<start_of_turn>", "<end_of_turn>", "<bos>", "<start_of_image>"}}),
    [](const ::testing::TestParamInfo<Model>& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace strata::tokenizer

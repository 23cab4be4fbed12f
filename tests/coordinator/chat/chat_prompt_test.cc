// Messages -> token ids through a real model's template and tokenizer (Llama 3.1: template from
// its tokenizer_config.json, tokenizer.json from the same release). The rendering is checked
// byte for byte against @huggingface/jinja elsewhere and the special-token encoding against
// transformers.js; this checks that they compose as the model expects: one BOS, special tokens
// as single ids, and the assistant header ending the prompt.
#include "coordinator/chat/chat_prompt.h"

#include <algorithm>
#include <filesystem>

#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"

namespace strata::chat {
namespace {

// Llama 3 vocabulary facts.
constexpr int32_t kBeginOfText = 128000;
constexpr int32_t kStartHeader = 128006;
constexpr int32_t kEndHeader = 128007;
constexpr int32_t kEndOfTurn = 128009;
constexpr int32_t kAssistant = 78191;
constexpr int32_t kNewlines = 271;  // "\n\n"

TEST(ChatPromptTest, Llama3MessagesBecomeTheIdsTheModelExpects) {
  STRATA_SHARED_DATA_OR_SKIP(tokenizer_json, "tokenizers/hf/llama3/tokenizer.json");
  STRATA_SHARED_DATA_OR_SKIP(config, "tokenizers/hf/llama3/tokenizer_config.json");
  // One folder with both files, as a model directory has them.
  const std::filesystem::path dir = testing::TempDir("llama3");
  std::filesystem::copy_file(tokenizer_json, dir / "tokenizer.json");
  std::filesystem::copy_file(config, dir / "tokenizer_config.json");

  auto tok = tokenizer::LoadTokenizer(dir.string());
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto templates = LoadChatTemplates(dir.string());
  ASSERT_TRUE(templates.ok()) << templates.status();
  boost::json::array messages = {
      boost::json::object{{"role", "system"}, {"content", "Be brief."}},
      boost::json::object{{"role", "user"}, {"content", "Hello <|eot_id|> there"}},
  };
  auto prompt = EncodeChat(*templates, **tok, messages, nullptr, "llama3");
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  const std::vector<int32_t>& ids = prompt->ids;
  ASSERT_GT(ids.size(), 8u);
  EXPECT_EQ(ids.front(), kBeginOfText);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), kBeginOfText), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), kStartHeader), 3);  // system, user, assistant
  EXPECT_EQ(std::vector<int32_t>(ids.end() - 4, ids.end()),
            (std::vector<int32_t>{kStartHeader, kAssistant, kEndHeader, kNewlines}));
  // The template's own end-of-turn markers are special ids; text inside a message is what the
  // user typed, and a marker typed by the user is tokenized as a marker too (as transformers'
  // apply_chat_template does) — three turns end: system, user, and the typed one.
  EXPECT_EQ(std::count(ids.begin(), ids.end(), kEndOfTurn), 3);
  auto text = (*tok)->Decode(ids, /*skip_special=*/false);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, prompt->text);
}

TEST(ChatPromptTest, ModelWithoutTemplateIsNamed) {
  STRATA_SHARED_DATA_OR_SKIP(model, "models/stories260K/hf");
  auto tok = tokenizer::LoadTokenizer(model.string());
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto templates = LoadChatTemplates(model.string());
  ASSERT_TRUE(templates.ok()) << templates.status();
  boost::json::array messages = {boost::json::object{{"role", "user"}, {"content", "hi"}}};
  auto prompt = EncodeChat(*templates, **tok, messages, nullptr, "stories260K");
  EXPECT_EQ(prompt.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(prompt.status().message().find("no chat template"), std::string::npos);
}

}  // namespace
}  // namespace strata::chat

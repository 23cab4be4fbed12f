// Real tokenizers and chat templates paired with a model of their family, in one model folder
// as `strata serve` loads it (the family fixture's config and weights beside the tokenizer
// files): chat messages must become the prompt text and the ids transformers.js's
// apply_chat_template makes of them.
//
//   Qwen3:   its tokenizer.json and tokenizer_config.json (template included) + the qwen3 fixture
//   Gemma 2: its template (chat_templates/) with the Gemma tokenizer.json here (Gemma 3's, whose
//            control tokens the template uses are the same) + the gemma2 fixture
//
// Phi-3.5 and Mixtral have no tokenizer.json in ../shared/data for transformers.js to load;
// their templates render byte for byte as @huggingface/jinja's (chat_template_parity_test),
// and here, paired with their families' tokenizers, their control tokens must come out as
// single ids and the ids decode back to the rendered text.
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "boost/json.hpp"
#include "coordinator/chat/chat_prompt.h"
#include "coordinator/chat/template_source.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/testing/node_reference.h"
#include "tests/testing/shared_data.h"

namespace strata::chat {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

std::string ReadText(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A model folder: the fixture's config and weights, the tokenizer files, and (when given) a
// chat template written into tokenizer_config.json.
fs::path PairedModel(const std::string& name, const fs::path& fixture,
                     const std::vector<fs::path>& tokenizer_files, const fs::path& config,
                     const std::string& chat_template = "") {
  const fs::path dir = testing::TempDir("paired_" + name) / name;
  fs::create_directories(dir);
  for (const char* file : {"config.json", "model.safetensors", "generation_config.json"}) {
    if (fs::exists(fixture / file)) fs::create_symlink(fixture / file, dir / file);
  }
  for (const fs::path& f : tokenizer_files) fs::copy_file(f, dir / f.filename());
  json::value tokenizer_config = json::parse(ReadText(config));
  if (!chat_template.empty()) tokenizer_config.as_object()["chat_template"] = chat_template;
  std::ofstream(dir / "tokenizer_config.json") << json::serialize(tokenizer_config);
  return dir;
}

json::array Conversations(bool with_system) {
  json::array out;
  json::array plain = {json::object{{"role", "user"}, {"content", "Why is the sky blue?"}}};
  json::array turns = {
      json::object{{"role", "user"}, {"content", "Hi!"}},
      json::object{{"role", "assistant"}, {"content", "Hello. How can I help?"}},
      json::object{{"role", "user"}, {"content", "Name three prime numbers.\n  Then stop."}},
  };
  json::array unicode = {
      json::object{{"role", "user"}, {"content", "Ça va? 日本語で答えて 🙂 — «tabs»\there"}}};
  out.push_back(plain);
  out.push_back(turns);
  out.push_back(unicode);
  if (with_system) {
    json::array system = {json::object{{"role", "system"}, {"content", "Answer briefly."}},
                          json::object{{"role", "user"}, {"content", "2 + 2?"}}};
    out.push_back(system);
  }
  return out;
}

// Our prompts for `conversations` from the model folder, against transformers.js's.
void ExpectLikeTransformersJs(const fs::path& dir, const json::array& conversations) {
  auto tok = tokenizer::LoadTokenizer(dir.string());
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto templates = LoadChatTemplates(dir.string());
  ASSERT_TRUE(templates.ok()) << templates.status();
  const json::object request{{"model_dir", dir.string()}, {"conversations", conversations}};
  auto reference = testing::RunNodeReference("chat_ids.mjs", json::serialize(request));
  ASSERT_TRUE(reference.ok()) << reference.status();
  const json::value expected = json::parse(*reference);
  ASSERT_EQ(expected.as_array().size(), conversations.size());
  for (size_t i = 0; i < conversations.size(); ++i) {
    SCOPED_TRACE("conversation " + std::to_string(i));
    auto prompt = EncodeChat(*templates, **tok, conversations[i].as_array(), nullptr, dir.string());
    ASSERT_TRUE(prompt.ok()) << prompt.status();
    const json::object& want = expected.as_array()[i].as_object();
    EXPECT_EQ(prompt->text, want.at("text").as_string().c_str());
    std::vector<int32_t> ids;
    for (const json::value& id : want.at("ids").as_array()) {
      ids.push_back(static_cast<int32_t>(id.to_number<int64_t>()));
    }
    EXPECT_EQ(prompt->ids, ids);
  }
}

TEST(FamilyChatTest, Qwen3TokenizerAndTemplateWithAQwen3Model) {
  STRATA_NODE_REFERENCES_OR_SKIP();
  STRATA_SHARED_DATA_OR_SKIP(fixture, "fixtures/qwen3/hf");
  STRATA_SHARED_DATA_OR_SKIP(tokenizer_json, "tokenizers/hf/qwen3/tokenizer.json");
  STRATA_SHARED_DATA_OR_SKIP(config, "tokenizers/hf/qwen3/tokenizer_config.json");
  ExpectLikeTransformersJs(PairedModel("qwen3", fixture, {tokenizer_json}, config),
                           Conversations(/*with_system=*/true));
}

TEST(FamilyChatTest, Gemma2TemplateWithAGemma2Model) {
  STRATA_NODE_REFERENCES_OR_SKIP();
  STRATA_SHARED_DATA_OR_SKIP(fixture, "fixtures/gemma2/hf");
  STRATA_SHARED_DATA_OR_SKIP(tokenizer_json, "tokenizers/hf/gemma3/tokenizer.json");
  STRATA_SHARED_DATA_OR_SKIP(config, "tokenizers/hf/gemma3/tokenizer_config.json");
  STRATA_SHARED_DATA_OR_SKIP(jinja, "chat_templates/google__gemma-2-2b-it.jinja");
  // Gemma 2's template refuses a system role.
  ExpectLikeTransformersJs(
      PairedModel("gemma2", fixture, {tokenizer_json}, config, ReadText(jinja)),
      Conversations(/*with_system=*/false));
}

// Control tokens as single ids, and ids that decode to the rendered prompt, less the white
// space that tokens marked rstrip swallow (Hugging Face's added tokens) and plus the space
// SentencePiece's dummy prefix puts on the text after a control token ("legacy": true).
void ExpectControlTokens(const fs::path& dir, const std::vector<std::string>& controls,
                         const std::vector<std::string>& rstrip,
                         const std::vector<std::string>& prefixed) {
  auto tok = tokenizer::LoadTokenizer(dir.string());
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto templates = LoadChatTemplates(dir.string());
  ASSERT_TRUE(templates.ok()) << templates.status();
  for (const json::value& messages : Conversations(/*with_system=*/false)) {
    auto prompt = EncodeChat(*templates, **tok, messages.as_array(), nullptr, dir.string());
    ASSERT_TRUE(prompt.ok()) << prompt.status();
    for (const std::string& control : controls) {
      if (prompt->text.find(control) == std::string::npos) continue;
      auto one = (*tok)->EncodeWithSpecialTokens(control, /*add_special=*/false);
      ASSERT_TRUE(one.ok()) << one.status();
      EXPECT_EQ(one->size(), 1u) << control << " is not one token";
      EXPECT_NE(std::find(prompt->ids.begin(), prompt->ids.end(), one->front()), prompt->ids.end())
          << control;
    }
    std::string expected = prompt->text;
    for (const std::string& token : rstrip) {
      for (size_t at = expected.find(token); at != std::string::npos;
           at = expected.find(token, at + 1)) {
        const size_t end = at + token.size();
        size_t ws = end;
        while (ws < expected.size() && std::isspace(static_cast<unsigned char>(expected[ws]))) ++ws;
        expected.erase(end, ws - end);
      }
    }
    for (const std::string& token : prefixed) {
      for (size_t at = expected.find(token); at != std::string::npos;
           at = expected.find(token, at + 1)) {
        const size_t end = at + token.size();
        if (end < expected.size() && expected[end] != ' ') expected.insert(end, " ");
      }
    }
    auto text = (*tok)->Decode(prompt->ids, /*skip_special=*/false);
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(*text, expected);
  }
}

TEST(FamilyChatTest, Phi35TemplateWithAPhi3Model) {
  STRATA_SHARED_DATA_OR_SKIP(fixture, "fixtures/phi3/hf");
  STRATA_SHARED_DATA_OR_SKIP(jinja, "chat_templates/microsoft__Phi-3.5-mini-instruct.jinja");
  const fs::path dir = PairedModel("phi3", fixture, {fixture / "tokenizer.model"},
                                   fixture / "tokenizer_config.json", ReadText(jinja));
  // "legacy": false: no dummy prefix after the control tokens.
  ExpectControlTokens(dir, {"<|user|>", "<|assistant|>", "<|end|>"},
                      /*rstrip=*/{"<|user|>", "<|assistant|>", "<|end|>"}, /*prefixed=*/{});
}

TEST(FamilyChatTest, MixtralTemplateWithAMixtralModel) {
  STRATA_SHARED_DATA_OR_SKIP(fixture, "fixtures/mixtral/hf");
  STRATA_SHARED_DATA_OR_SKIP(spm, "tokenizers/sentencepiece/mistral-v1.model");
  STRATA_SHARED_DATA_OR_SKIP(config, "configs/mistralai__Mixtral-8x7B-Instruct-v0.1/tokenizer_config.json");
  const fs::path dir = PairedModel("mixtral", fixture, {}, config);
  fs::copy_file(spm, dir / "tokenizer.model");
  ExpectControlTokens(dir, {"<s>", "</s>"}, /*rstrip=*/{}, /*prefixed=*/{"<s>", "</s>"});
}

}  // namespace
}  // namespace strata::chat

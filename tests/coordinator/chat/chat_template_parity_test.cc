// Every real chat template in ../shared/data, rendered for every conversation in
// conversations.cc with add_generation_prompt false and true, must equal
// @huggingface/jinja's rendering byte for byte; where the reference raises (bad role order,
// unsupported content), Strata must fail too, with the same raise_exception message.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "boost/json.hpp"
#include "common/formats/gguf.h"
#include "coordinator/chat/chat_template.h"
#include "coordinator/chat/template_source.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/coordinator/chat/conversations.h"
#include "tests/testing/node_reference.h"
#include "tests/testing/shared_data.h"

namespace strata::chat {
namespace {

namespace fs = std::filesystem;

constexpr BrokenDownTime kNow{2024, 7, 26, 13, 5};

// One real template and the special tokens its tokenizer config declares.
struct RealTemplate {
  std::string name;
  std::string text;
  std::optional<std::string> bos, eos;
};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// *.jinja, every tokenizer_config.json with a chat_template, and GGUF tokenizer.chat_template.
std::vector<RealTemplate> FindTemplates(const fs::path& root) {
  std::vector<RealTemplate> out;
  std::vector<fs::path> paths;
  for (const auto& entry : fs::recursive_directory_iterator(root)) paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());
  for (const fs::path& path : paths) {
    const std::string rel = fs::relative(path, root).string();
    if (path.extension() == ".jinja") {
      out.push_back({rel, ReadFile(path), "<s>", "</s>"});
    } else if (path.filename() == "tokenizer_config.json") {
      absl::StatusOr<ChatTemplates> t = LoadTokenizerConfigTemplates(path.string());
      EXPECT_TRUE(t.ok()) << t.status();
      if (!t.ok() || !t->default_template) continue;
      out.push_back({rel, *t->default_template, t->bos_token, t->eos_token});
      for (const auto& [name, text] : t->named) out.push_back({rel + ":" + name, text, t->bos_token, t->eos_token});
    } else if (path.extension() == ".gguf") {
      absl::StatusOr<std::unique_ptr<GgufFile>> gguf = GgufFile::Open(path.string());
      if (!gguf.ok()) continue;
      absl::StatusOr<ChatTemplates> t = ChatTemplatesFromGguf(**gguf);
      EXPECT_TRUE(t.ok()) << t.status();
      if (t.ok() && t->default_template) out.push_back({rel, *t->default_template, "<s>", "</s>"});
    }
  }
  return out;
}

// The contexts rendered for one template: each conversation x add_generation_prompt.
std::vector<std::pair<std::string, boost::json::object>> Cases(const RealTemplate& t) {
  std::vector<std::pair<std::string, boost::json::object>> out;
  for (const testing::Conversation& c : testing::Conversations()) {
    for (bool gen : {false, true}) {
      boost::json::object ctx = boost::json::parse(c.context).as_object();
      ctx["add_generation_prompt"] = gen;
      if (t.bos) ctx["bos_token"] = *t.bos;
      if (t.eos) ctx["eos_token"] = *t.eos;
      out.emplace_back(c.name + (gen ? "+gen" : ""), std::move(ctx));
    }
  }
  return out;
}

ChatTemplateInput ToInput(const RealTemplate& t, const boost::json::object& ctx) {
  ChatTemplateInput in;
  in.template_text = t.text;
  in.template_name = t.name;
  in.options.clock = [] { return kNow; };
  for (const auto& kv : ctx) {
    const std::string key(kv.key());
    if (key == "messages") in.messages = kv.value().as_array();
    else if (key == "add_generation_prompt") in.add_generation_prompt = kv.value().as_bool();
    else if (key == "bos_token" && kv.value().is_string()) in.bos_token = std::string(kv.value().as_string());
    else if (key == "eos_token" && kv.value().is_string()) in.eos_token = std::string(kv.value().as_string());
    else if (key == "tools") in.tools = kv.value().as_array();
    else in.extra_variables[key] = kv.value();
  }
  return in;
}

TEST(ChatTemplateParityTest, RealTemplatesMatchHuggingFaceJinja) {
  STRATA_NODE_REFERENCES_OR_SKIP();
  STRATA_SHARED_DATA_OR_SKIP(root, "");
  const std::vector<RealTemplate> templates = FindTemplates(root);
  ASSERT_GE(templates.size(), 9u);
  int total = 0, rendered = 0, raised = 0, failed_both = 0;
  for (const RealTemplate& t : templates) {
    SCOPED_TRACE(t.name);
    const auto cases = Cases(t);
    boost::json::object request;
    request["template"] = t.text;
    request["now"] = {kNow.year, kNow.month, kNow.day, kNow.hour, kNow.minute};
    boost::json::array req_cases;
    for (const auto& [name, ctx] : cases) req_cases.push_back(boost::json::object{{"context", ctx}});
    request["cases"] = std::move(req_cases);
    absl::StatusOr<std::string> answer =
        ::strata::testing::RunNodeReference("chat_template.mjs", boost::json::serialize(request));
    ASSERT_TRUE(answer.ok()) << answer.status();
    const boost::json::array results = boost::json::parse(*answer).as_array();
    ASSERT_EQ(results.size(), cases.size());
    for (size_t i = 0; i < cases.size(); ++i) {
      SCOPED_TRACE(cases[i].first);
      ++total;
      const boost::json::object& ref = results[i].as_object();
      absl::StatusOr<std::string> ours = RenderChat(ToInput(t, cases[i].second));
      if (ref.at("ok").as_bool()) {
        ++rendered;
        ASSERT_TRUE(ours.ok()) << ours.status();
        EXPECT_EQ(*ours, std::string(ref.at("text").as_string()));
      } else if (ref.at("raised").as_bool()) {
        ++raised;
        ASSERT_FALSE(ours.ok()) << "reference raised: " << ref.at("error").as_string();
        EXPECT_THAT(std::string(ours.status().message()),
                    ::testing::HasSubstr("raise_exception: " +
                                         std::string(ref.at("error").as_string())));
      } else {
        ++failed_both;
        EXPECT_FALSE(ours.ok()) << "reference failed with: " << ref.at("error").as_string()
                                << "\nours rendered: " << *ours;
      }
    }
  }
  std::cout << templates.size() << " templates, " << total << " cases: " << rendered
            << " rendered, " << raised << " raise_exception, " << failed_both
            << " interpreter errors on both sides\n";
}

}  // namespace
}  // namespace strata::chat

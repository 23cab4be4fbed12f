#include "coordinator/chat/template_source.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "common/formats/gguf.h"
#include "common/json.h"
#include "common/status.h"

namespace strata::chat {
namespace {

// A special token written as a string or as an AddedToken object {"content": "..."}.
std::optional<std::string> TokenText(const boost::json::object& config, const char* key) {
  const boost::json::value* v = config.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) return std::string(v->get_string());
  if (v->is_object()) {
    const boost::json::value* content = v->get_object().if_contains("content");
    if (content != nullptr && content->is_string()) return std::string(content->get_string());
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> ChatTemplates::Get(std::string_view name) const {
  if (name.empty() || name == "default") return default_template;
  auto it = named.find(std::string(name));
  if (it == named.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<ChatTemplates> ChatTemplatesFromTokenizerConfig(std::string_view json_text) {
  boost::system::error_code ec;
  boost::json::value root =
      boost::json::parse(boost::json::string_view(json_text.data(), json_text.size()), ec);
  if (ec || !root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer_config.json is not a JSON object: ", ec.message()));
  }
  const boost::json::object& config = root.get_object();
  ChatTemplates out;
  out.bos_token = TokenText(config, "bos_token");
  out.eos_token = TokenText(config, "eos_token");
  const boost::json::value* tmpl = config.if_contains("chat_template");
  if (tmpl == nullptr || tmpl->is_null()) return out;
  if (tmpl->is_string()) {
    out.default_template = std::string(tmpl->get_string());
    return out;
  }
  if (!tmpl->is_array()) {
    return absl::InvalidArgumentError(
        "tokenizer_config.json: chat_template must be a string or a list of {name, template}");
  }
  for (const boost::json::value& entry : tmpl->get_array()) {
    const boost::json::object* e = entry.if_object();
    const boost::json::value* name = e ? e->if_contains("name") : nullptr;
    const boost::json::value* text = e ? e->if_contains("template") : nullptr;
    if (name == nullptr || text == nullptr || !name->is_string() || !text->is_string()) {
      return absl::InvalidArgumentError(
          "tokenizer_config.json: each chat_template entry needs string `name` and `template`");
    }
    const std::string key(name->get_string());
    if (key == "default") out.default_template = std::string(text->get_string());
    else out.named[key] = std::string(text->get_string());
  }
  return out;
}

absl::StatusOr<ChatTemplates> LoadTokenizerConfigTemplates(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path));
  absl::StatusOr<ChatTemplates> out = ChatTemplatesFromTokenizerConfig(text);
  if (!out.ok()) {
    return absl::Status(out.status().code(), absl::StrCat(path, ": ", out.status().message()));
  }
  return out;
}

absl::StatusOr<ChatTemplates> ChatTemplatesFromGguf(const GgufFile& gguf) {
  ChatTemplates out;
  STRATA_ASSIGN_OR_RETURN(out.default_template, gguf.GetString("tokenizer.chat_template"));
  constexpr std::string_view kPrefix = "tokenizer.chat_template.";
  for (const auto& [key, value] : gguf.metadata()) {
    if (!absl::StartsWith(key, absl::string_view(kPrefix.data(), kPrefix.size()))) continue;
    STRATA_ASSIGN_OR_RETURN(std::optional<std::string> text, gguf.GetString(key));
    if (text) out.named[key.substr(kPrefix.size())] = *text;
  }
  return out;
}

absl::StatusOr<ChatTemplates> LoadChatTemplates(const std::string& model_path) {
  const std::filesystem::path path(model_path);
  if (std::filesystem::is_directory(path)) {
    const std::filesystem::path config = path / "tokenizer_config.json";
    if (!std::filesystem::exists(config)) return ChatTemplates{};
    return LoadTokenizerConfigTemplates(config.string());
  }
  absl::StatusOr<std::unique_ptr<GgufFile>> gguf = GgufFile::Open(model_path);
  if (!gguf.ok()) return gguf.status();
  return ChatTemplatesFromGguf(**gguf);
}

}  // namespace strata::chat

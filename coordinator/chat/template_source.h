// Where chat templates come from: the `chat_template` of a Hugging Face tokenizer_config.json
// (a string, or a list of {"name", "template"} of which "default" is the default) and the
// `tokenizer.chat_template` metadata of a GGUF file (plus `tokenizer.chat_template.<name>`).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace strata {
class GgufFile;
}

namespace strata::chat {

// A model's chat templates.
struct ChatTemplates {
  std::optional<std::string> default_template;     // absent when the model has none
  std::map<std::string, std::string> named;        // e.g. "tool_use", "rag"
  std::optional<std::string> bos_token;            // from tokenizer_config.json, if a string
  std::optional<std::string> eos_token;            // (or an AddedToken {"content": ...})

  // The template called `name`, or the default for "" / "default"; nullopt when missing.
  std::optional<std::string> Get(std::string_view name = "") const;
};

// Reads the templates (and bos/eos tokens) from tokenizer_config.json text. A config without
// `chat_template` gives an empty ChatTemplates; a malformed one is InvalidArgument.
absl::StatusOr<ChatTemplates> ChatTemplatesFromTokenizerConfig(std::string_view json_text);

// Same, from a file path (errors name the file).
absl::StatusOr<ChatTemplates> LoadTokenizerConfigTemplates(const std::string& path);

// Reads `tokenizer.chat_template` and `tokenizer.chat_template.<name>` from GGUF metadata.
absl::StatusOr<ChatTemplates> ChatTemplatesFromGguf(const GgufFile& gguf);

// The templates of a model path: `tokenizer_config.json` in a Hugging Face directory (an
// empty ChatTemplates when that file is absent) or the metadata of a `.gguf` file.
absl::StatusOr<ChatTemplates> LoadChatTemplates(const std::string& model_path);

}  // namespace strata::chat

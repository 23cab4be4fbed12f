// Rendering a model's chat template over an OpenAI-style conversation: the entry point the
// HTTP gateway uses to turn `messages` (+ `tools`) into the prompt text.
//
// The variables the template sees are the ones transformers passes: `messages`,
// `add_generation_prompt`, `bos_token`, `eos_token`, `tools` (only when given), plus any
// extra variables (`date_string`, `enable_thinking`, ...). JSON values convert as
// transformers.js converts them: objects keep their key order (JavaScript puts integer-like
// keys first, and so does JsonToValue), and numbers with an integral value become integers.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "boost/json.hpp"
#include "coordinator/chat/template.h"
#include "coordinator/chat/value.h"

namespace strata::chat {

// One chat-template render request.
struct ChatTemplateInput {
  std::string template_text;
  std::string template_name;     // for error messages, e.g. "Qwen/Qwen3-8B"
  boost::json::array messages;   // [{role, content (string or [{type, text}...]), ...}]
  bool add_generation_prompt = false;
  std::optional<std::string> bos_token;  // absent: undefined in the template
  std::optional<std::string> eos_token;
  std::optional<boost::json::array> tools;  // absent: `tools` is undefined
  boost::json::object extra_variables;      // e.g. {"enable_thinking": false}
  RenderOptions options;
};

// Converts a JSON value to a template Value (see the file comment for key order and numbers).
Value JsonToValue(const boost::json::value& json);

// The variables of `input` in the order they are defined.
std::vector<std::pair<std::string, Value>> ChatVariables(const ChatTemplateInput& input);

// Parses and renders `input.template_text`. Errors as Template::Parse / Template::Render.
absl::StatusOr<std::string> RenderChat(const ChatTemplateInput& input);

// Renders an already parsed template (the gateway parses once per model).
absl::StatusOr<std::string> RenderChat(const Template& tmpl, const ChatTemplateInput& input);

}  // namespace strata::chat

// Chat messages -> the token ids a model receives: the model's chat template rendered with
// add_generation_prompt, then tokenized with special tokens written by the template parsed as
// such (and no BOS added on top: templates write it themselves). The gateway and
// `strata generate --chat` both go through here, so `usage.prompt_tokens` is exactly what the
// workers get.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/json.hpp"
#include "coordinator/chat/template_source.h"
#include "coordinator/tokenizer/tokenizer.h"

namespace strata::chat {

struct ChatPrompt {
  std::string text;          // the rendered template
  std::vector<int32_t> ids;  // its tokens
};

// Renders `messages` (and `tools`, when given) through `templates`' default template.
// NotFound when the model has no chat template. `name` labels template errors. A rendered text
// longer than `max_text_bytes` (when not 0) is OutOfRange, before it is encoded.
absl::StatusOr<ChatPrompt> EncodeChat(const ChatTemplates& templates,
                                      const tokenizer::Tokenizer& tokenizer,
                                      const boost::json::array& messages,
                                      const boost::json::array* tools, const std::string& name,
                                      size_t max_text_bytes = 0);

}  // namespace strata::chat

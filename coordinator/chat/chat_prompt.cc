#include "coordinator/chat/chat_prompt.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "coordinator/chat/chat_template.h"

namespace strata::chat {

absl::StatusOr<ChatPrompt> EncodeChat(const ChatTemplates& templates,
                                      const tokenizer::Tokenizer& tokenizer,
                                      const boost::json::array& messages,
                                      const boost::json::array* tools, const std::string& name,
                                      size_t max_text_bytes) {
  std::optional<std::string> text = templates.Get();
  if (!text) return absl::NotFoundError(absl::StrCat(name, ": the model has no chat template"));
  ChatTemplateInput input;
  input.template_text = *std::move(text);
  input.template_name = name;
  input.messages = messages;
  input.add_generation_prompt = true;
  if (tools != nullptr) input.tools = *tools;
  input.bos_token = templates.bos_token;
  input.eos_token = templates.eos_token;
  // GGUF files carry no token strings beside the template: take them from the vocabulary.
  if (!input.bos_token && tokenizer.bos_id() >= 0) {
    STRATA_ASSIGN_OR_RETURN(input.bos_token, tokenizer.TokenToPiece(tokenizer.bos_id()));
  }
  if (!input.eos_token && !tokenizer.eos_ids().empty()) {
    STRATA_ASSIGN_OR_RETURN(input.eos_token, tokenizer.TokenToPiece(*tokenizer.eos_ids().begin()));
  }
  ChatPrompt prompt;
  STRATA_ASSIGN_OR_RETURN(prompt.text, RenderChat(input));
  if (max_text_bytes > 0 && prompt.text.size() > max_text_bytes) {
    return absl::OutOfRangeError(absl::StrCat("the rendered chat prompt is ", prompt.text.size(),
                                              " bytes, more than the context can hold (",
                                              max_text_bytes, " bytes)"));
  }
  STRATA_ASSIGN_OR_RETURN(prompt.ids,
                          tokenizer.EncodeWithSpecialTokens(prompt.text, /*add_special=*/false));
  return prompt;
}

}  // namespace strata::chat

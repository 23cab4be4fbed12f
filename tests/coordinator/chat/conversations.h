// Conversations rendered through every real chat template by chat_template_parity_test: each
// is a JSON object of template variables (messages, tools, extra variables), crossed with
// add_generation_prompt true/false by the test.
#pragma once

#include <string>
#include <vector>

namespace strata::chat::testing {

// One named conversation; `context` is a JSON object text.
struct Conversation {
  std::string name;
  std::string context;
};

// The conversations: plain chats, bad role orders, tools and tool calls, list-of-parts
// content, reasoning content, white space and Unicode.
std::vector<Conversation> Conversations();

}  // namespace strata::chat::testing

// Fuzz target: chat-template parsing and rendering. An input is a template, optionally followed
// by a NUL byte and the conversation as JSON (OpenAI `messages`); without one, a fixed
// conversation with a system prompt, tool calls and tools is rendered. Both halves are hostile:
// templates come with model files, messages from API clients. Parse and render must return a
// value or a Status (within the render limits), never crash or run away.
#include <cstdint>
#include <string>
#include <string_view>

#include "boost/json.hpp"
#include "coordinator/chat/chat_template.h"
#include "tests/fuzz/fuzz_support.h"

namespace strata::fuzz {
namespace {

constexpr std::string_view kConversation = R"([
  {"role": "system", "content": "You are terse."},
  {"role": "user", "content": "What is the weather in Paris?"},
  {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function",
    "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
  {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
  {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]}
])";

constexpr std::string_view kTools = R"([{"type": "function", "function": {"name": "get_weather",
  "description": "Weather", "parameters": {"type": "object",
  "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])";

}  // namespace
}  // namespace strata::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  chat::ChatTemplateInput render;
  render.template_text = std::string(input.substr(0, nul));
  render.template_name = "fuzz";
  const std::string_view conversation =
      nul == std::string_view::npos ? fuzz::kConversation : input.substr(nul + 1);
  boost::system::error_code ec;
  boost::json::value messages = boost::json::parse(conversation, ec);
  if (ec || !messages.is_array()) return 0;  // the gateway refuses these before rendering
  render.messages = std::move(messages.as_array());
  render.add_generation_prompt = true;
  render.bos_token = "<s>";
  render.eos_token = "</s>";
  render.tools = boost::json::parse(fuzz::kTools).as_array();
  render.extra_variables["enable_thinking"] = false;
  render.options.clock = [] { return chat::BrokenDownTime{}; };
  // Smaller than the gateway's limits so that a looping template costs milliseconds here; the
  // checks that enforce them are the same.
  render.options.limits.max_steps = 20'000;
  render.options.limits.max_output_bytes = 1 << 20;
  (void)chat::RenderChat(render);  // a value or a Status; both fine
  return 0;
}

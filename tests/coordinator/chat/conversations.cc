#include "tests/coordinator/chat/conversations.h"

namespace strata::chat::testing {
namespace {

constexpr char kTools[] = R"([
  {"type": "function", "function": {"name": "get_weather",
    "description": "Get the current weather in a city",
    "parameters": {"type": "object",
      "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"},
                     "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                     "days": {"type": "integer", "minimum": 1, "maximum": 7.5}},
      "required": ["city"]}}},
  {"type": "function", "function": {"name": "no_args", "description": "Takes nothing",
    "parameters": {"type": "object", "properties": {}}}}
])";

std::string WithTools(const std::string& messages, const std::string& extra = "") {
  return std::string(R"({"tools": )") + kTools + R"(, "messages": )" + messages + extra + "}";
}

}  // namespace

std::vector<Conversation> Conversations() {
  std::vector<Conversation> out = {
      {"system_user",
       R"({"messages": [{"role": "system", "content": "You are a helpful assistant."},
                        {"role": "user", "content": "Hello!"}]})"},
      {"user_only", R"({"messages": [{"role": "user", "content": "What is 2+2?"}]})"},
      {"multi_turn",
       R"({"messages": [{"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello! How can I help?"},
                        {"role": "user", "content": "Tell me a joke."}]})"},
      {"system_multi_turn",
       R"({"messages": [{"role": "system", "content": "  Be terse.  \n"},
                        {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hi."},
                        {"role": "user", "content": "Bye"},
                        {"role": "assistant", "content": "Bye."}]})"},
      {"assistant_first",
       R"({"messages": [{"role": "assistant", "content": "I speak first"},
                        {"role": "user", "content": "ok"}]})"},
      {"two_users",
       R"({"messages": [{"role": "user", "content": "one"},
                        {"role": "user", "content": "two"}]})"},
      {"empty_messages", R"({"messages": []})"},
      {"content_parts",
       R"({"messages": [{"role": "system", "content": [{"type": "text", "text": "Sys parts"}]},
                        {"role": "user", "content": [{"type": "text", "text": " part one "},
                                                     {"type": "text", "text": "part two"}]}]})"},
      {"whitespace",
       R"({"messages": [{"role": "user", "content": "\n\n  padded\tcontent \n"},
                        {"role": "assistant", "content": "  answer\n\n"},
                        {"role": "user", "content": ""}]})"},
      {"unicode",
       R"({"messages": [{"role": "system", "content": "Réponds en français 🇫🇷"},
                        {"role": "user", "content": "日本語で？ \u00e9\u2028 emoji 😀 \"quotes\" \\ back"}]})"},
      {"reasoning",
       R"({"messages": [{"role": "user", "content": "Think first"},
                        {"role": "assistant",
                         "content": "<think>\nLet me think.\n</think>\n\nThe answer is 4."},
                        {"role": "user", "content": "And again?"}]})"},
      {"thinking_disabled",
       R"({"enable_thinking": false, "date_string": "01 Jan 2025",
           "messages": [{"role": "user", "content": "Quick answer"}]})"},
      {"tools_declared", WithTools(R"([{"role": "user", "content": "Weather in Paris?"}])")},
      {"tool_call_round_trip",
       WithTools(R"([
         {"role": "system", "content": "Use tools when needed."},
         {"role": "user", "content": "Weather in Paris?"},
         {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function",
           "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
         {"role": "tool", "tool_call_id": "call_1", "name": "get_weather",
          "content": "{\"temperature\": 21.5, \"unit\": \"celsius\"}"},
         {"role": "assistant", "content": "It is 21.5°C in Paris."}])")},
      {"tool_call_string_arguments",
       WithTools(R"([
         {"role": "user", "content": "Weather?"},
         {"role": "assistant", "content": "Checking.", "tool_calls": [{"type": "function",
           "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
         {"role": "tool", "content": {"temperature": -3, "ok": true}}])")},
      {"parallel_tool_calls",
       WithTools(R"([
         {"role": "user", "content": "Two cities"},
         {"role": "assistant", "content": null, "tool_calls": [
           {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "A"}}},
           {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "B"}}}]},
         {"role": "tool", "content": "sunny"},
         {"role": "tool", "content": "rainy"}])")},
      {"tools_in_system_prompt",
       WithTools(R"([{"role": "user", "content": "Weather in Rome?"}])",
                 R"(, "tools_in_user_message": false, "date_string": "26 Jul 2024")")},
      {"builtin_tools",
       R"({"builtin_tools": ["brave_search", "code_interpreter", "wolfram_alpha"],
           "messages": [{"role": "user", "content": "Search it"},
                        {"role": "assistant", "tool_calls": [{"type": "function",
                          "function": {"name": "brave_search",
                                       "arguments": {"query": "strata"}}}]},
                        {"role": "ipython", "content": "results"}]})"},
  };
  return out;
}

}  // namespace strata::chat::testing

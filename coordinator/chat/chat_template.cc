#include "coordinator/chat/chat_template.h"

#include <algorithm>
#include <cmath>

#include "common/status.h"

namespace strata::chat {
namespace {

// An ECMAScript array index ("0", "42"; not "01" or "-1"), which Object.entries lists first.
bool ArrayIndexKey(const std::string& key, uint64_t* index) {
  if (key.empty() || key.size() > 10 || (key.size() > 1 && key[0] == '0')) return false;
  uint64_t v = 0;
  for (char c : key) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v >= 4294967295ULL) return false;
  *index = v;
  return true;
}

Value ObjectToValue(const boost::json::object& obj) {
  std::vector<std::pair<uint64_t, const boost::json::key_value_pair*>> indexed;
  std::vector<const boost::json::key_value_pair*> named;
  for (const auto& kv : obj) {
    uint64_t index = 0;
    const std::string key(kv.key());
    if (ArrayIndexKey(key, &index)) indexed.emplace_back(index, &kv);
    else named.push_back(&kv);
  }
  std::stable_sort(indexed.begin(), indexed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  auto data = std::make_shared<DictData>();
  for (const auto& [index, kv] : indexed) data->Set(std::string(kv->key()), JsonToValue(kv->value()));
  for (const auto* kv : named) data->Set(std::string(kv->key()), JsonToValue(kv->value()));
  return Value::MakeDict(std::move(data));
}

}  // namespace

Value JsonToValue(const boost::json::value& json) {
  switch (json.kind()) {
    case boost::json::kind::null: return Value::MakeNone();
    case boost::json::kind::bool_: return Value::Bool(json.get_bool());
    case boost::json::kind::int64: return Value::Int(json.get_int64());
    case boost::json::kind::uint64: {
      const uint64_t u = json.get_uint64();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value::Int(static_cast<int64_t>(u));
      return Value::Float(static_cast<double>(u));
    }
    case boost::json::kind::double_: {
      const double d = json.get_double();
      // JavaScript has one number type: 2.0 arrives as the integer 2.
      if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9.007199254740992e15) {
        return Value::Int(static_cast<int64_t>(d));
      }
      return Value::Float(d);
    }
    case boost::json::kind::string: return Value::String(std::string(json.get_string()));
    case boost::json::kind::array: {
      std::vector<Value> items;
      items.reserve(json.get_array().size());
      for (const auto& item : json.get_array()) items.push_back(JsonToValue(item));
      return Value::List(std::move(items));
    }
    case boost::json::kind::object: return ObjectToValue(json.get_object());
  }
  return Value();
}

std::vector<std::pair<std::string, Value>> ChatVariables(const ChatTemplateInput& input) {
  std::vector<std::pair<std::string, Value>> vars;
  vars.emplace_back("messages", JsonToValue(input.messages));
  vars.emplace_back("add_generation_prompt", Value::Bool(input.add_generation_prompt));
  if (input.bos_token) vars.emplace_back("bos_token", Value::String(*input.bos_token));
  if (input.eos_token) vars.emplace_back("eos_token", Value::String(*input.eos_token));
  if (input.tools) vars.emplace_back("tools", JsonToValue(*input.tools));
  for (const auto& kv : input.extra_variables) {
    vars.emplace_back(std::string(kv.key()), JsonToValue(kv.value()));
  }
  return vars;
}

absl::StatusOr<std::string> RenderChat(const Template& tmpl, const ChatTemplateInput& input) {
  return tmpl.Render(ChatVariables(input), input.options);
}

absl::StatusOr<std::string> RenderChat(const ChatTemplateInput& input) {
  STRATA_ASSIGN_OR_RETURN(Template tmpl, Template::Parse(input.template_text,
                                                         input.template_name));
  return RenderChat(tmpl, input);
}

}  // namespace strata::chat

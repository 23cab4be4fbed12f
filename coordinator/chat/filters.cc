// Filters written without arguments (`x | trim`), dispatched on the operand's type exactly as
// jinja-js's applyFilter does: each type accepts its own list, anything else is an error
// naming the filter and the type. Filters with arguments are in filters_call.cc.
#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "coordinator/chat/builtins.h"
#include "coordinator/chat/filters_internal.h"
#include "coordinator/chat/js_text.h"
#include "coordinator/chat/value_ops.h"

namespace strata::chat {
namespace {

absl::Status Unknown(const char* type, const std::string& name) {
  return absl::InvalidArgumentError(absl::StrCat("Unknown ", type, " filter: ", name));
}

absl::StatusOr<Value> ListFilter(const Value& v, const std::string& name) {
  const auto& items = v.list().items;
  if (name == "list") return v;
  if (name == "first" || name == "last") {
    if (items.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("`", name, "` of an empty list"));
    }
    return name == "first" ? items.front() : items.back();
  }
  if (name == "length") return Value::Int(static_cast<int64_t>(items.size()));
  if (name == "reverse") return Value::List(std::vector<Value>(items.rbegin(), items.rend()));
  if (name == "sort") return SortList(v, CallArgs{});
  if (name == "join") {
    std::string out;
    for (const Value& item : items) out += JoinPiece(item);
    return Value::String(std::move(out));
  }
  if (name == "string") {
    JsonOptions o;
    o.undefined_as_null = false;
    STRATA_ASSIGN_OR_RETURN(std::string s, ToJson(v, o));
    return Value::String(std::move(s));
  }
  if (name == "unique") {
    std::vector<Value> out;
    for (const Value& item : items) {
      bool seen = false;
      for (const Value& kept : out) seen = seen || StrictEquals(kept, item);
      if (!seen) out.push_back(item);
    }
    return Value::List(std::move(out));
  }
  return Unknown("ArrayValue", name);
}

absl::StatusOr<Value> StringFilter(const Value& v, const std::string& name) {
  const std::string& s = v.str();
  if (name == "length") return Value::Int(Utf16Length(s));
  if (name == "upper") return Value::String(AsciiUpper(s));
  if (name == "lower") return Value::String(AsciiLower(s));
  if (name == "title") return Value::String(JsTitle(s));
  if (name == "capitalize" || name == "indent") return StringCallFilter(v, name, CallArgs{});
  if (name == "trim") return Value::String(JsTrim(s, true, true));
  if (name == "join" || name == "string") return v;
  if (name == "int") {
    int64_t i = 0;
    return Value::Int(JsParseInt(s, &i) ? i : 0);
  }
  if (name == "float") {
    double d = 0;
    return Value::Float(JsParseFloat(s, &d) ? d : 0.0);
  }
  return Unknown("StringValue", name);
}

absl::StatusOr<Value> NumberFilter(const Value& v, const std::string& name) {
  if (name == "abs") {
    return v.is_int() ? Value::Int(v.as_int() < 0 ? -v.as_int() : v.as_int())
                      : Value::Float(std::fabs(v.as_float()));
  }
  if (name == "int") {
    if (v.is_int()) return v;
    const double f = std::floor(v.as_float());
    if (!(std::fabs(f) < 9.2e18)) return absl::InvalidArgumentError("int() of a float out of range");
    return Value::Int(static_cast<int64_t>(f));
  }
  if (name == "float") return Value::Float(v.as_number());
  if (name == "string") {
    STRATA_ASSIGN_OR_RETURN(std::string s, Display(v));
    return Value::String(std::move(s));
  }
  return Unknown("NumericValue", name);
}

absl::StatusOr<Value> BoolFilter(const Value& v, const std::string& name) {
  const bool b = v.as_bool();
  if (name == "bool") return v;
  if (name == "int") return Value::Int(b ? 1 : 0);
  if (name == "float") return Value::Float(b ? 1.0 : 0.0);
  if (name == "string") return Value::String(b ? "true" : "false");
  return Unknown("BooleanValue", name);
}

absl::StatusOr<Value> PlainFilter(const Value& v, const std::string& name) {
  if (name == "safe") return v;
  if (name == "tojson") {
    STRATA_ASSIGN_OR_RETURN(std::string s, ToJson(v, JsonOptions{}));
    return Value::String(std::move(s));
  }
  if (v.is_list()) return ListFilter(v, name);
  if (v.is_string()) return StringFilter(v, name);
  if (v.is_number()) return NumberFilter(v, name);
  if (v.is_dict()) {
    if (name == "length") return Value::Int(static_cast<int64_t>(v.dict().size()));
    if (name == "items" || name == "keys" || name == "values" || name == "dictsort" ||
        name == "get") {
      return DictMethod(v, name, CallArgs{});
    }
    return Unknown("ObjectValue", name);
  }
  if (v.is_bool()) return BoolFilter(v, name);
  return absl::InvalidArgumentError(
      absl::StrCat("Cannot apply filter \"", name, "\" to type: ", v.TypeName()));
}

}  // namespace

absl::StatusOr<Value> ApplyFilter(Evaluator& ev, const Value& operand, const Node& filter,
                                  const ScopePtr& scope) {
  if (filter.kind == NodeKind::kIdentifier) return PlainFilter(operand, filter.text);
  if (filter.kind != NodeKind::kCall || filter.a->kind != NodeKind::kIdentifier) {
    return absl::InvalidArgumentError("Unknown filter expression");
  }
  return CallFilter(ev, operand, filter, scope);
}

}  // namespace strata::chat

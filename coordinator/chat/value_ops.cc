#include "coordinator/chat/value_ops.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "coordinator/chat/js_text.h"

namespace strata::chat {
namespace {

using Kind = Value::Kind;

// JavaScript ToNumber on a primitive; nullopt for NaN.
std::optional<double> PrimitiveNumber(const Value& v) {
  switch (v.kind()) {
    case Kind::kBool: return v.as_bool() ? 1.0 : 0.0;
    case Kind::kInt:
    case Kind::kFloat: return v.as_number();
    case Kind::kString: {
      double d = 0;
      if (JsStringToNumber(v.str(), &d)) return d;
      return std::nullopt;
    }
    default: return std::nullopt;
  }
}

bool IsContainer(const Value& v) {
  return v.is_list() || v.is_dict() || v.is_namespace() || v.is_function();
}

absl::Status JsonInto(const Value& v, const JsonOptions& o, int depth, std::string* out);

absl::Status JsonContainer(const Value& v, const JsonOptions& o, int depth, std::string* out) {
  const std::string item_sep = o.separators ? o.separators->first : o.indent ? "," : ", ";
  const std::string key_sep = o.separators ? o.separators->second : ": ";
  const std::string unit = o.indent > 0 ? std::string(o.indent, ' ') : "";
  std::string base = "\n";
  for (int i = 0; i < depth; ++i) base += unit;
  const std::string child = base + unit;
  const bool pretty = o.indent > 0;
  if (v.is_list()) {
    const auto& items = v.list().items;
    out->push_back('[');
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) *out += item_sep;
      if (pretty) *out += child;
      STRATA_RETURN_IF_ERROR(JsonInto(items[i], o, depth + 1, out));
    }
    if (pretty && !items.empty()) *out += base;
    out->push_back(']');
    return absl::OkStatus();
  }
  std::vector<const std::pair<std::string, Value>*> entries;
  for (const auto& e : v.dict().entries()) entries.push_back(&e);
  if (o.sort_keys) {
    // localeCompare: approximated by code-unit order (documented).
    std::stable_sort(entries.begin(), entries.end(),
                     [](auto* a, auto* b) { return a->first < b->first; });
  }
  out->push_back('{');
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0) *out += item_sep;
    if (pretty) *out += child;
    *out += JsonQuote(entries[i]->first, o.ensure_ascii);
    *out += key_sep;
    STRATA_RETURN_IF_ERROR(JsonInto(entries[i]->second, o, depth + 1, out));
  }
  if (pretty && !entries.empty()) *out += base;
  out->push_back('}');
  return absl::OkStatus();
}

absl::Status JsonInto(const Value& v, const JsonOptions& o, int depth, std::string* out) {
  if (depth > 512) return absl::ResourceExhaustedError("value nested too deeply for tojson");
  switch (v.kind()) {
    case Kind::kNone: *out += "null"; return absl::OkStatus();
    case Kind::kUndefined: *out += o.undefined_as_null ? "null" : "undefined";
      return absl::OkStatus();
    case Kind::kBool: *out += v.as_bool() ? "true" : "false"; return absl::OkStatus();
    case Kind::kInt: *out += std::to_string(v.as_int()); return absl::OkStatus();
    case Kind::kFloat: {
      const double d = v.as_float();
      *out += std::isfinite(d) ? JsNumberToString(d) : "null";
      return absl::OkStatus();
    }
    case Kind::kString: *out += JsonQuote(v.str(), o.ensure_ascii); return absl::OkStatus();
    case Kind::kList:
    case Kind::kDict:
    case Kind::kNamespace:
      if (!v.is_tuple() && !v.is_kwargs()) return JsonContainer(v, o, depth, out);
      [[fallthrough]];
    default:
      return absl::InvalidArgumentError(absl::StrCat("Cannot convert to JSON: ", v.TypeName()));
  }
}

}  // namespace

absl::StatusOr<std::string> Display(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
    case Kind::kNone: return std::string();
    case Kind::kBool: return std::string(v.as_bool() ? "true" : "false");
    case Kind::kInt: return std::to_string(v.as_int());
    case Kind::kFloat: {
      const double d = v.as_float();
      if (d == 0 && std::signbit(d)) return std::string("-0.0");
      if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 1e21) {
        return JsNumberToString(d) + ".0";
      }
      return JsNumberToString(d);
    }
    case Kind::kString: return v.str();
    case Kind::kFunction: return std::string("[function]");
    default: {
      JsonOptions o;
      o.undefined_as_null = false;
      return ToJson(v, o);
    }
  }
}

std::string JsString(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined: return "undefined";
    case Kind::kNone: return "null";
    case Kind::kBool: return v.as_bool() ? "true" : "false";
    case Kind::kInt: return std::to_string(v.as_int());
    case Kind::kFloat: return JsNumberToString(v.as_float());
    case Kind::kString: return v.str();
    case Kind::kList: {
      std::string out;
      const auto& items = v.list().items;
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += ",";
        if (items[i].is_none()) out += "null";
        else if (items[i].is_undefined()) out += "undefined";
        else out += Display(items[i]).value_or("");
      }
      return out;
    }
    case Kind::kDict:
    case Kind::kNamespace: return "[object Map]";
    case Kind::kFunction: return "[function]";
  }
  return "";
}

std::string JoinPiece(const Value& v) {
  return v.is_none() || v.is_undefined() ? std::string() : JsString(v);
}

bool LooseEquals(const Value& a, const Value& b) {
  const bool a_nullish = a.is_none() || a.is_undefined();
  const bool b_nullish = b.is_none() || b.is_undefined();
  if (a_nullish || b_nullish) return a_nullish && b_nullish;
  if (IsContainer(a) || IsContainer(b)) return a.SameObject(b);
  if (a.is_string() && b.is_string()) return a.str() == b.str();
  const std::optional<double> x = PrimitiveNumber(a);
  const std::optional<double> y = PrimitiveNumber(b);
  return x && y && *x == *y;
}

bool StrictEquals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return a.as_number() == b.as_number();
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kUndefined:
    case Kind::kNone: return true;
    case Kind::kBool: return a.as_bool() == b.as_bool();
    case Kind::kString: return a.str() == b.str();
    default: return a.SameObject(b);
  }
}

absl::StatusOr<int> CompareValues(const Value& a, const Value& b, bool case_sensitive) {
  if (a.is_none() && b.is_none()) return 0;
  if (a.is_undefined() && b.is_undefined()) return 0;
  if (a.is_none() || b.is_none() || a.is_undefined() || b.is_undefined()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Cannot compare ", a.TypeName(), " with ", b.TypeName()));
  }
  const bool a_num = a.is_number() || a.is_bool();
  const bool b_num = b.is_number() || b.is_bool();
  if (a_num && b_num) {
    const double x = a.is_bool() ? a.as_bool() : a.as_number();
    const double y = b.is_bool() ? b.as_bool() : b.as_number();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.TypeName() != b.TypeName()) {
    return absl::InvalidArgumentError(absl::StrCat("Cannot compare different types: ",
                                                   a.TypeName(), " and ", b.TypeName()));
  }
  if (!a.is_string()) {
    return absl::InvalidArgumentError(absl::StrCat("Cannot compare type: ", a.TypeName()));
  }
  const std::u16string x = Utf8ToUtf16(case_sensitive ? a.str() : AsciiLower(a.str()));
  const std::u16string y = Utf8ToUtf16(case_sensitive ? b.str() : AsciiLower(b.str()));
  return x < y ? -1 : x > y ? 1 : 0;
}

absl::StatusOr<std::string> ToJson(const Value& v, const JsonOptions& options) {
  std::string out;
  STRATA_RETURN_IF_ERROR(JsonInto(v, options, 0, &out));
  return out;
}

}  // namespace strata::chat

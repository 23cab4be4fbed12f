// Filters written with arguments (`x | join(", ")`, `tools | tojson(indent=4)`), following
// jinja-js: a few filters accept any operand (tojson, join, int, float, default); the rest
// are looked up by the operand's type.
#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "coordinator/chat/builtins.h"
#include "coordinator/chat/filters_internal.h"
#include "coordinator/chat/js_text.h"
#include "coordinator/chat/value_ops.h"

namespace strata::chat {
namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(message); }

// Positional argument i, else keyword `name`, else `fallback`.
Value Arg(const CallArgs& args, size_t i, const char* name, Value fallback) {
  if (args.positional.size() > i) return args.positional[i];
  if (const Value* kw = args.Keyword(name)) return *kw;
  return fallback;
}

// getAttributeValue: "a.b.0" through dicts, namespaces and lists; undefined when missing.
Value AttributePath(const Value& item, const std::string& path) {
  Value v = item;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (v.is_dict() || v.is_namespace()) {
      const Value* next = v.dict().Find(std::string(part));
      if (next == nullptr) return Value();
      v = *next;
    } else if (v.is_list()) {
      int64_t i = 0;
      if (!JsParseInt(std::string(part), &i) || i < 0 ||
          i >= static_cast<int64_t>(v.list().items.size())) {
        return Value();
      }
      v = v.list().items[i];
    } else {
      return Value();
    }
  }
  return v;
}

absl::StatusOr<Value> ToJsonFilter(const Value& v, const CallArgs& args) {
  JsonOptions o;
  const Value indent = Arg(args, SIZE_MAX, "indent", Value::MakeNone());
  if (!indent.is_int() && !indent.is_none()) return Invalid("If set, indent must be a number");
  o.indent = indent.is_int() ? std::min<int64_t>(std::max<int64_t>(indent.as_int(), 0), 64) : 0;
  const Value ascii = Arg(args, SIZE_MAX, "ensure_ascii", Value::Bool(false));
  if (!ascii.is_bool()) return Invalid("If set, ensure_ascii must be a boolean");
  o.ensure_ascii = ascii.as_bool();
  const Value sort = Arg(args, SIZE_MAX, "sort_keys", Value::Bool(false));
  if (!sort.is_bool()) return Invalid("If set, sort_keys must be a boolean");
  o.sort_keys = sort.as_bool();
  const Value seps = Arg(args, SIZE_MAX, "separators", Value::MakeNone());
  if (seps.is_list()) {
    const auto& items = seps.list().items;
    if (items.size() != 2 || !items[0].is_string() || !items[1].is_string()) {
      return Invalid("separators must be a tuple of two strings");
    }
    o.separators = std::make_pair(items[0].str(), items[1].str());
  } else if (!seps.is_none()) {
    return Invalid("If set, separators must be a tuple of two strings");
  }
  STRATA_ASSIGN_OR_RETURN(std::string s, ToJson(v, o));
  return Value::String(std::move(s));
}

absl::StatusOr<Value> Join(const Value& v, const CallArgs& args) {
  const Value sep = Arg(args, 0, "separator", Value::String(""));
  if (!sep.is_string()) return Invalid("separator must be a string");
  std::string out;
  if (v.is_string()) {
    const std::string& s = v.str();
    for (size_t pos = 0; pos < s.size();) {
      if (pos > 0) out += sep.str();
      AppendCodePoint(NextCodePoint(s, &pos), &out);
    }
  } else {
    const auto& items = v.list().items;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out += sep.str();
      out += JoinPiece(items[i]);
    }
  }
  return Value::String(std::move(out));
}

absl::StatusOr<Value> Number(const Value& v, bool to_int, const CallArgs& args) {
  const Value fallback = Arg(args, 0, "default", to_int ? Value::Int(0) : Value::Float(0.0));
  if (v.is_string()) {
    if (to_int) {
      int64_t i = 0;
      return JsParseInt(v.str(), &i) ? Value::Int(i) : fallback;
    }
    double d = 0;
    return JsParseFloat(v.str(), &d) ? Value::Float(d) : fallback;
  }
  if (v.is_number()) return v;
  if (v.is_bool()) return to_int ? Value::Int(v.as_bool()) : Value::Float(v.as_bool());
  return Invalid(absl::StrCat("Cannot apply filter \"", to_int ? "int" : "float",
                              "\" to type: ", v.TypeName()));
}

absl::StatusOr<Value> SelectAttr(const Value& list, const std::string& name, const Node& filter,
                                 const std::vector<Value>& args) {
  for (const Value& item : list.list().items) {
    if (!item.is_dict() && !item.is_namespace()) {
      return Invalid(absl::StrCat("`", name, "` can only be applied to array of objects"));
    }
  }
  for (const NodePtr& arg : filter.items) {
    if (arg->kind != NodeKind::kString) {
      return Invalid(absl::StrCat("arguments of `", name, "` must be strings"));
    }
  }
  if (args.empty()) return Invalid(absl::StrCat("`", name, "` needs an attribute name"));
  const bool select = name == "selectattr";
  std::vector<Value> out;
  for (const Value& item : list.list().items) {
    const Value* a = item.dict().Find(args[0].str());
    bool result = false;
    if (a != nullptr) {
      if (args.size() > 1) {
        STRATA_ASSIGN_OR_RETURN(result, RunTest(args[1].str(), *a, args.size() > 2 ? &args[2] : nullptr));
      } else {
        result = a->Truthy();
      }
    }
    if (result == select) out.push_back(item);
  }
  return Value::List(std::move(out));
}

absl::StatusOr<Value> Map(const Value& list, const CallArgs& args) {
  const Value* attr = args.Keyword("attribute");
  if (attr == nullptr) {
    return Invalid("`map` expressions without `attribute` set are not currently supported.");
  }
  if (!attr->is_string()) return Invalid("attribute must be a string");
  const Value* fallback = args.Keyword("default");
  std::vector<Value> out;
  for (const Value& item : list.list().items) {
    if (!item.is_dict() && !item.is_namespace()) return Invalid("items in map must be an object");
    Value v = AttributePath(item, attr->str());
    out.push_back(v.is_undefined() && fallback != nullptr ? *fallback : v);
  }
  return Value::List(std::move(out));
}

}  // namespace

absl::StatusOr<Value> SortList(const Value& list, const CallArgs& args) {
  const Value reverse = Arg(args, 0, "reverse", Value::Bool(false));
  if (!reverse.is_bool()) return Invalid("reverse must be a boolean");
  const Value case_sensitive = Arg(args, 1, "case_sensitive", Value::Bool(false));
  if (!case_sensitive.is_bool()) return Invalid("case_sensitive must be a boolean");
  const Value attribute = Arg(args, 2, "attribute", Value::MakeNone());
  if (!attribute.is_string() && !attribute.is_int() && !attribute.is_none()) {
    return Invalid("attribute must be a string, integer, or null");
  }
  auto key = [&](const Value& item) {
    if (attribute.is_none()) return item;
    return AttributePath(item, attribute.is_int() ? std::to_string(attribute.as_int())
                                                  : attribute.str());
  };
  std::vector<Value> items = list.list().items;
  absl::Status error = absl::OkStatus();
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    absl::StatusOr<int> c = CompareValues(key(a), key(b), case_sensitive.as_bool());
    if (!c.ok()) {
      error.Update(c.status());
      return false;
    }
    return reverse.as_bool() ? *c > 0 : *c < 0;
  });
  STRATA_RETURN_IF_ERROR(error);
  return Value::List(std::move(items));
}

absl::StatusOr<Value> StringCallFilter(const Value& v, const std::string& name,
                                       const CallArgs& args) {
  const std::string& s = v.str();
  if (name == "capitalize") {
    std::u16string u = Utf8ToUtf16(s);
    if (!u.empty() && u[0] >= u'a' && u[0] <= u'z') u[0] = static_cast<char16_t>(u[0] - 32);
    return Value::String(Utf16ToUtf8(u));
  }
  if (name == "replace") return StringReplace(s, args);
  if (name != "indent") return Invalid(absl::StrCat("Unknown StringValue filter: ", name));
  const Value width = Arg(args, 0, "width", Value::Int(4));
  if (!width.is_int()) return Invalid("width must be a number");
  if (width.as_int() < 0 || width.as_int() > 1024) return Invalid("indent width out of range");
  const bool first = Arg(args, 1, "first", Value::Bool(false)).Truthy();
  const bool blank = Arg(args, 2, "blank", Value::Bool(false)).Truthy();
  const std::string pad(width.as_int(), ' ');
  std::string out;
  size_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(s, '\n')) {
    if (line_no > 0) out += "\n";
    const bool skip = (!first && line_no == 0) || (!blank && line.empty());
    if (!skip) out += pad;
    out.append(line.data(), line.size());
    ++line_no;
  }
  return Value::String(std::move(out));
}

absl::StatusOr<Value> CallFilter(Evaluator& ev, const Value& v, const Node& filter,
                                 const ScopePtr& scope) {
  const std::string& name = filter.a->text;
  STRATA_ASSIGN_OR_RETURN(CallArgs args, ev.EvalArgs(filter.items, scope));
  if (name == "tojson") return ToJsonFilter(v, args);
  if (name == "join") {
    if (!v.is_string() && !v.is_list()) {
      return Invalid(absl::StrCat("Cannot apply filter \"join\" to type: ", v.TypeName()));
    }
    return Join(v, args);
  }
  if (name == "int" || name == "float") return Number(v, name == "int", args);
  if (name == "default") {
    const Value fallback = args.positional.empty() ? Value::String("") : args.positional[0];
    const Value boolean = Arg(args, 1, "boolean", Value::Bool(false));
    if (!boolean.is_bool()) return Invalid("`default` filter flag must be a boolean");
    return v.is_undefined() || (boolean.as_bool() && !v.Truthy()) ? fallback : v;
  }
  if (v.is_list()) {
    if (name == "sort") return SortList(v, args);
    if (name == "selectattr" || name == "rejectattr") {
      return SelectAttr(v, name, filter, args.positional);
    }
    if (name == "map") return Map(v, args);
    return Invalid(absl::StrCat("Unknown ArrayValue filter: ", name));
  }
  if (v.is_string()) {
    if (name == "indent" || name == "replace") return StringCallFilter(v, name, args);
    return Invalid(absl::StrCat("Unknown StringValue filter: ", name));
  }
  if (v.is_dict()) {
    if (name == "get" || name == "items" || name == "keys" || name == "values" ||
        name == "dictsort") {
      return DictMethod(v, name, std::move(args));
    }
    return Invalid(absl::StrCat("Unknown ObjectValue filter: ", name));
  }
  return Invalid(absl::StrCat("Cannot apply filter \"", name, "\" to type: ", v.TypeName()));
}

}  // namespace strata::chat

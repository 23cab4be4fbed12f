// Tests (`x is string`), members of values (string methods, dict methods, `length`) and the
// global functions, as jinja-js defines them.
#include "coordinator/chat/builtins.h"

#include <ctime>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "coordinator/chat/js_text.h"
#include "coordinator/chat/value_ops.h"

namespace strata::chat {
namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(message); }

// A method bound to its receiver.
Value Method(std::function<absl::StatusOr<Value>(CallArgs)> fn) {
  return Value::Function(
      [fn = std::move(fn)](Evaluator&, const ScopePtr&, CallArgs args) { return fn(std::move(args)); });
}

// str.startswith / endswith with a string or a list of strings.
absl::StatusOr<Value> Affix(const std::string& s, const CallArgs& args, bool prefix) {
  const char* name = prefix ? "startswith" : "endswith";
  if (args.positional.empty()) return Invalid(absl::StrCat(name, "() requires at least one argument"));
  auto match = [&](const std::string& p) {
    return p.size() <= s.size() &&
           (prefix ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0);
  };
  const Value& pattern = args.positional[0];
  if (pattern.is_string()) return Value::Bool(match(pattern.str()));
  if (pattern.is_list()) {
    for (const Value& item : pattern.list().items) {
      if (!item.is_string()) return Invalid(absl::StrCat(name, "() tuple elements must be strings"));
      if (match(item.str())) return Value::Bool(true);
    }
    return Value::Bool(false);
  }
  return Invalid(absl::StrCat(name, "() argument must be a string or tuple of strings"));
}

// Python's str.split(sep=None, maxsplit=-1), as jinja-js implements it.
absl::StatusOr<Value> Split(const std::string& s, const CallArgs& args) {
  const Value sep = args.positional.size() > 0 ? args.positional[0] : Value::MakeNone();
  if (!sep.is_string() && !sep.is_none()) return Invalid("sep argument must be a string or null");
  const Value maxsplit_v = args.positional.size() > 1 ? args.positional[1] : Value::Int(-1);
  if (!maxsplit_v.is_int()) return Invalid("maxsplit argument must be a number");
  const int64_t maxsplit = maxsplit_v.as_int();
  std::vector<Value> parts;
  if (sep.is_none()) {
    const std::string text = JsTrim(s, true, false);
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t start = pos;
      while (pos < text.size() && JsSpaceAt(text, pos) == 0) ++pos;
      if (maxsplit != -1 && static_cast<int64_t>(parts.size()) >= maxsplit) {
        parts.push_back(Value::String(text.substr(start)));
        break;
      }
      parts.push_back(Value::String(text.substr(start, pos - start)));
      while (size_t n = JsSpaceAt(text, pos)) pos += n;
    }
  } else {
    const std::string& d = sep.str();
    if (d.empty()) return Invalid("empty separator");
    size_t start = 0;
    while (true) {
      const bool limit = maxsplit != -1 && static_cast<int64_t>(parts.size()) >= maxsplit;
      const size_t at = limit ? std::string::npos : s.find(d, start);
      if (at == std::string::npos) {
        parts.push_back(Value::String(s.substr(start)));
        break;
      }
      parts.push_back(Value::String(s.substr(start, at - start)));
      start = at + d.size();
    }
  }
  return Value::List(std::move(parts));
}

}  // namespace

absl::StatusOr<Value> StringReplace(const std::string& s, const CallArgs& args) {
  if (args.positional.size() < 2) return Invalid("replace() requires at least two arguments");
  const Value& from = args.positional[0];
  const Value& to = args.positional[1];
  if (!from.is_string() || !to.is_string()) return Invalid("replace() arguments must be strings");
  Value count = Value::MakeNone();
  if (args.positional.size() > 2) count = args.positional[2];
  else if (const Value* kw = args.Keyword("count")) count = *kw;
  if (!count.is_int() && !count.is_none()) {
    return Invalid("replace() count argument must be a number or null");
  }
  int64_t remaining = count.is_none() || count.as_int() < 0 ? INT64_MAX : count.as_int();
  if (remaining == 0) return Value::String(s);
  std::string out;
  if (from.str().empty()) {  // between every code point, and at both ends
    size_t pos = 0;
    while (true) {
      if (remaining > 0) out += to.str(), --remaining;
      if (pos >= s.size()) break;
      const size_t start = pos;
      NextCodePoint(s, &pos);
      out.append(s, start, pos - start);
    }
    return Value::String(std::move(out));
  }
  size_t start = 0;
  for (size_t at = s.find(from.str()); at != std::string::npos && remaining > 0;
       at = s.find(from.str(), start), --remaining) {
    out.append(s, start, at - start);
    out += to.str();
    start = at + from.str().size();
  }
  out.append(s, start, std::string::npos);
  return Value::String(std::move(out));
}

namespace {

Value StringMember(const std::string& s, const std::string& name) {
  auto fixed = [](std::string r) {
    return Method([r = std::move(r)](CallArgs) -> absl::StatusOr<Value> { return Value::String(r); });
  };
  if (name == "length") return Value::Int(Utf16Length(s));
  if (name == "upper") return fixed(AsciiUpper(s));
  if (name == "lower") return fixed(AsciiLower(s));
  // jinja-js ignores the argument of strip/lstrip/rstrip: they always strip white space.
  if (name == "strip") return fixed(JsTrim(s, true, true));
  if (name == "lstrip") return fixed(JsTrim(s, true, false));
  if (name == "rstrip") return fixed(JsTrim(s, false, true));
  if (name == "title") return fixed(JsTitle(s));
  if (name == "capitalize") {
    std::u16string u = Utf8ToUtf16(s);
    if (!u.empty() && u[0] >= u'a' && u[0] <= u'z') u[0] = static_cast<char16_t>(u[0] - 32);
    return fixed(Utf16ToUtf8(u));
  }
  if (name == "startswith" || name == "endswith") {
    const bool prefix = name == "startswith";
    return Method([s, prefix](CallArgs args) { return Affix(s, args, prefix); });
  }
  if (name == "split") return Method([s](CallArgs args) { return Split(s, args); });
  if (name == "replace") return Method([s](CallArgs args) { return StringReplace(s, args); });
  return Value();
}

}  // namespace

absl::StatusOr<Value> GetMember(const Value& object, const Value& property) {
  if (object.is_dict() || object.is_namespace()) {
    if (!property.is_string()) {
      return Invalid(absl::StrCat("Cannot access property with non-string: got ",
                                  property.TypeName()));
    }
    if (const Value* v = object.dict().Find(property.str())) return *v;
    static const char* kMethods[] = {"get", "items", "keys", "values", "dictsort"};
    if (object.is_dict()) {
      for (const char* m : kMethods) {
        if (property.str() != m) continue;
        std::string name = m;
        return Method([object, name](CallArgs args) { return DictMethod(object, name, std::move(args)); });
      }
    }
    return Value();
  }
  if (object.is_list() || object.is_string()) {
    if (property.is_int()) {
      if (object.is_list()) {
        const auto& items = object.list().items;
        int64_t i = property.as_int();
        if (i < 0) i += static_cast<int64_t>(items.size());
        return i >= 0 && i < static_cast<int64_t>(items.size()) ? items[i] : Value();
      }
      const std::u16string u = Utf8ToUtf16(object.str());
      int64_t i = property.as_int();
      if (i < 0) i += static_cast<int64_t>(u.size());
      if (i < 0 || i >= static_cast<int64_t>(u.size())) return Value();
      return Value::String(Utf16ToUtf8(std::u16string(1, u[i])));
    }
    if (property.is_string()) {
      if (object.is_list()) {
        if (property.str() == "length") return Value::Int(object.list().items.size());
        return Value();
      }
      return StringMember(object.str(), property.str());
    }
    return Invalid(absl::StrCat("Cannot access property with non-string/non-number: got ",
                                property.TypeName()));
  }
  if (!property.is_string()) {
    return Invalid(absl::StrCat("Cannot access property with non-string: got ", property.TypeName()));
  }
  return Value();
}

}  // namespace strata::chat

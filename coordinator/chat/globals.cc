// Tests, dict methods and global functions of jinja-js.
#include <ctime>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "coordinator/chat/builtins.h"
#include "coordinator/chat/js_text.h"
#include "coordinator/chat/value_ops.h"

namespace strata::chat {
namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(message); }

Value Pair(const std::string& key, const Value& value) {
  return Value::List({Value::String(key), value});
}

// dictsort(case_sensitive=false, by='key', reverse=false).
absl::StatusOr<Value> DictSort(const Value& dict, const CallArgs& args) {
  auto arg = [&](size_t i, const char* name, Value fallback) {
    if (args.positional.size() > i) return args.positional[i];
    if (const Value* kw = args.Keyword(name)) return *kw;
    return fallback;
  };
  const Value case_sensitive = arg(0, "case_sensitive", Value::Bool(false));
  if (!case_sensitive.is_bool()) return Invalid("case_sensitive must be a boolean");
  const Value by = arg(1, "by", Value::String("key"));
  if (!by.is_string()) return Invalid("by must be a string");
  if (by.str() != "key" && by.str() != "value") return Invalid("by must be either 'key' or 'value'");
  const Value reverse = arg(2, "reverse", Value::Bool(false));
  if (!reverse.is_bool()) return Invalid("reverse must be a boolean");
  std::vector<Value> items;
  for (const auto& [key, value] : dict.dict().entries()) items.push_back(Pair(key, value));
  const size_t index = by.str() == "key" ? 0 : 1;
  absl::Status error = absl::OkStatus();
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    absl::StatusOr<int> c =
        CompareValues(a.list().items[index], b.list().items[index], case_sensitive.as_bool());
    if (!c.ok()) {
      error.Update(c.status());
      return false;
    }
    return reverse.as_bool() ? *c > 0 : *c < 0;
  });
  STRATA_RETURN_IF_ERROR(error);
  return Value::List(std::move(items));
}

// The JavaScript value of a jinja-js global's first argument, for raise_exception's message.
std::string RaisedMessage(const CallArgs& args) {
  if (args.positional.empty()) return "";
  const Value& v = args.positional[0];
  if (v.is_undefined()) return "";
  return JsString(v);
}

std::string Strftime(const BrokenDownTime& t, const std::string& format) {
  static constexpr const char* kShort[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  static constexpr const char* kLong[] = {"January", "February", "March",     "April",
                                          "May",     "June",     "July",      "August",
                                          "September", "October", "November", "December"};
  auto pad2 = [](int n) { return n < 10 ? absl::StrCat("0", n) : absl::StrCat(n); };
  const int month = std::min(std::max(t.month, 1), 12) - 1;
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%' || i + 1 >= format.size()) {
      out.push_back(format[i]);
      continue;
    }
    const char c = format[i + 1];
    switch (c) {
      case 'Y': out += absl::StrCat(t.year); break;
      case 'm': out += pad2(t.month); break;
      case 'd': out += pad2(t.day); break;
      case 'b': out += kShort[month]; break;
      case 'B': out += kLong[month]; break;
      case 'H': out += pad2(t.hour); break;
      case 'M': out += pad2(t.minute); break;
      case '%': out += "%"; break;
      default: out.push_back('%'); continue;  // unknown: kept as written
    }
    ++i;
  }
  return out;
}

BrokenDownTime LocalNow() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  return BrokenDownTime{tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min};
}

Value Global(std::function<absl::StatusOr<Value>(CallArgs)> fn) {
  return Value::Function(
      [fn = std::move(fn)](Evaluator&, const ScopePtr&, CallArgs args) { return fn(std::move(args)); });
}

absl::StatusOr<Value> Namespace(CallArgs args) {
  if (args.positional.size() > 1) {
    return Invalid(absl::StrCat("namespace expected at most 1 argument, got ",
                                args.positional.size()));
  }
  auto data = std::make_shared<DictData>();
  if (args.positional.size() == 1) {
    const Value& source = args.positional[0];
    if (source.is_dict()) {
      for (const auto& [key, value] : source.dict().entries()) data->Set(key, value);
    } else if (source.is_list()) {
      for (const Value& pair : source.list().items) {
        if (!pair.is_list() || pair.list().items.size() != 2) {
          return Invalid("namespace expected an object or an iterable of [key, value] pairs");
        }
        if (!pair.list().items[0].is_string()) return Invalid("namespace keys must be strings");
        data->Set(pair.list().items[0].str(), pair.list().items[1]);
      }
    } else {
      return Invalid(absl::StrCat("'", source.TypeName(), "' object is not iterable"));
    }
  }
  for (auto& [key, value] : args.keyword) data->Set(key, std::move(value));
  return Value::MakeNamespace(std::move(data));
}

absl::StatusOr<Value> Range(Evaluator& ev, CallArgs args) {
  std::vector<int64_t> n;
  for (const Value& v : args.positional) {
    if (!v.is_int()) return Invalid(absl::StrCat("range() arguments must be integers, got ", v.TypeName()));
    n.push_back(v.as_int());
  }
  if (n.empty() || n.size() > 3) return Invalid("range() expects 1 to 3 arguments");
  const int64_t start = n.size() == 1 ? 0 : n[0];
  const int64_t stop = n.size() == 1 ? n[0] : n[1];
  const int64_t step = n.size() == 3 ? n[2] : 1;
  if (step == 0) return Invalid("range() step must not be zero");
  const double count = std::max(0.0, std::ceil((static_cast<double>(stop) - start) / step));
  STRATA_RETURN_IF_ERROR(ev.Charge(static_cast<int64_t>(std::min(count, 9e18))));
  std::vector<Value> items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) items.push_back(Value::Int(i));
  return Value::List(std::move(items));
}

}  // namespace

absl::StatusOr<Value> DictMethod(const Value& dict, const std::string& name, CallArgs args) {
  const DictData& d = dict.dict();
  if (name == "get") {
    if (args.positional.empty() || !args.positional[0].is_string()) {
      return Invalid(absl::StrCat("Object key must be a string: got ",
                                  args.positional.empty() ? "UndefinedValue"
                                                          : args.positional[0].TypeName()));
    }
    if (const Value* v = d.Find(args.positional[0].str())) return *v;
    return args.positional.size() > 1 ? args.positional[1] : Value::MakeNone();
  }
  std::vector<Value> out;
  if (name == "items") {
    for (const auto& [key, value] : d.entries()) out.push_back(Pair(key, value));
  } else if (name == "keys") {
    for (const auto& [key, value] : d.entries()) out.push_back(Value::String(key));
  } else if (name == "values") {
    for (const auto& [key, value] : d.entries()) out.push_back(value);
  } else if (name == "dictsort") {
    return DictSort(dict, args);
  } else {
    return Invalid(absl::StrCat("Unknown ObjectValue filter: ", name));
  }
  return Value::List(std::move(out));
}

absl::StatusOr<bool> RunTest(std::string_view name, const Value& v, const Value* arg) {
  if (name == "boolean") return v.is_bool();
  if (name == "callable") return v.is_function();
  if (name == "odd" || name == "even") {
    if (!v.is_int()) {
      return Invalid(absl::StrCat("cannot ", absl::string_view(name.data(), name.size()),
                                  " on ", v.TypeName()));
    }
    return (v.as_int() % 2 != 0) == (name == "odd");
  }
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_int();
  if (name == "iterable") return (v.is_list() && !v.is_tuple()) || v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "sequence") return v.is_list() || v.is_dict() || v.is_string();
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return Invalid(absl::StrCat("test '", absl::string_view(name.data(), name.size()), "' needs a string, got ", v.TypeName()));
    return v.str() == (name == "lower" ? AsciiLower(v.str()) : AsciiUpper(v.str()));
  }
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "equalto" || name == "eq") {
    if (arg == nullptr) return Invalid("test 'equalto' needs a value to compare with");
    return StrictEquals(v, *arg);
  }
  return Invalid(absl::StrCat("Unknown test: ", absl::string_view(name.data(), name.size())));
}

void InstallGlobals(Scope& global, Clock clock) {
  global.Set("false", Value::Bool(false));
  global.Set("true", Value::Bool(true));
  global.Set("none", Value::MakeNone());
  global.Set("False", Value::Bool(false));
  global.Set("True", Value::Bool(true));
  global.Set("None", Value::MakeNone());
  global.Set("namespace", Global(Namespace));
  global.Set("raise_exception", Global([](CallArgs args) -> absl::StatusOr<Value> {
    return Invalid(absl::StrCat(absl::string_view(kRaisedPrefix.data(), kRaisedPrefix.size()), RaisedMessage(args)));
  }));
  global.Set("range", Value::Function([](Evaluator& ev, const ScopePtr&, CallArgs args) {
    return Range(ev, std::move(args));
  }));
  if (!clock) clock = LocalNow;
  global.Set("strftime_now", Global([clock](CallArgs args) -> absl::StatusOr<Value> {
    const std::string format =
        !args.positional.empty() && args.positional[0].is_string() ? args.positional[0].str() : "";
    return Value::String(Strftime(clock(), format));
  }));
}

}  // namespace strata::chat

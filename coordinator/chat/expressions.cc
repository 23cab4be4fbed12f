// Expression nodes of the evaluator: literals, member access and slicing, calls, unary and
// binary operators, tests.
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "coordinator/chat/builtins.h"
#include "coordinator/chat/evaluator.h"
#include "coordinator/chat/js_text.h"

namespace strata::chat {
namespace {

// utils.slice: Python-style slicing with JavaScript's handling of a zero step (empty).
template <typename T>
std::vector<T> SliceOf(const std::vector<T>& array, const Value& start_v, const Value& stop_v,
                       const Value& step_v) {
  const auto len = static_cast<int64_t>(array.size());
  const int64_t step = step_v.is_undefined() ? 1 : step_v.as_int();
  const int direction = step > 0 ? 1 : step < 0 ? -1 : 0;
  int64_t start, stop;
  if (direction >= 0) {
    start = start_v.is_undefined() ? 0 : start_v.as_int();
    start = start < 0 ? std::max<int64_t>(len + start, 0) : std::min(start, len);
    stop = stop_v.is_undefined() ? len : stop_v.as_int();
    stop = stop < 0 ? std::max<int64_t>(len + stop, 0) : std::min(stop, len);
  } else {
    start = start_v.is_undefined() ? len - 1 : start_v.as_int();
    start = start < 0 ? std::max<int64_t>(len + start, -1) : std::min(start, len - 1);
    stop = stop_v.is_undefined() ? -1 : stop_v.as_int();
    stop = stop < -1 ? std::max<int64_t>(len + stop, -1) : std::min(stop, len - 1);
  }
  std::vector<T> out;
  if (direction == 0) return out;
  for (int64_t i = start; direction * i < direction * stop; i += step) out.push_back(array[i]);
  return out;
}

}  // namespace

absl::StatusOr<Value> Evaluator::EvalLiteral(const Node& node, const ScopePtr& scope) {
  if (node.kind == NodeKind::kDict) {
    Value dict = Value::MakeDict();
    for (size_t i = 0; i + 1 < node.items.size(); i += 2) {
      STRATA_ASSIGN_OR_RETURN(Value key, Eval(*node.items[i], scope));
      if (!key.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat("Object keys must be strings: got ", key.TypeName()));
      }
      STRATA_ASSIGN_OR_RETURN(Value value, Eval(*node.items[i + 1], scope));
      dict.mutable_dict().Set(key.str(), std::move(value));
    }
    return dict;
  }
  std::vector<Value> items;
  for (const NodePtr& item : node.items) {
    STRATA_ASSIGN_OR_RETURN(Value v, Eval(*item, scope));
    items.push_back(std::move(v));
  }
  return Value::List(std::move(items), node.kind == NodeKind::kTuple);
}

absl::StatusOr<Value> Evaluator::EvalSlice(const Value& object, const Node& slice,
                                           const ScopePtr& scope) {
  if (!object.is_list() && !object.is_string()) {
    return absl::InvalidArgumentError("Slice object must be an array or string");
  }
  Value parts[3];
  const NodePtr* nodes[3] = {&slice.a, &slice.b, &slice.c};
  static constexpr const char* kNames[3] = {"start", "stop", "step"};
  for (int i = 0; i < 3; ++i) {
    if (*nodes[i]) {
      STRATA_ASSIGN_OR_RETURN(parts[i], Eval(**nodes[i], scope));
    }
    if (!parts[i].is_int() && !parts[i].is_undefined()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Slice ", kNames[i], " must be numeric or undefined"));
    }
  }
  if (object.is_list()) {
    return Value::List(SliceOf(object.list().items, parts[0], parts[1], parts[2]));
  }
  std::vector<uint32_t> code_points;
  const std::string& s = object.str();
  for (size_t pos = 0; pos < s.size();) code_points.push_back(NextCodePoint(s, &pos));
  std::string out;
  for (uint32_t cp : SliceOf(code_points, parts[0], parts[1], parts[2])) AppendCodePoint(cp, &out);
  return Value::String(std::move(out));
}

absl::StatusOr<Value> Evaluator::EvalMember(const Node& node, const ScopePtr& scope) {
  STRATA_ASSIGN_OR_RETURN(Value object, Eval(*node.a, scope));
  Value property;
  if (node.computed) {
    if (node.b->kind == NodeKind::kSlice) return EvalSlice(object, *node.b, scope);
    STRATA_ASSIGN_OR_RETURN(property, Eval(*node.b, scope));
  } else if (node.b->kind == NodeKind::kInt) {
    property = Value::Int(node.b->int_value);
  } else {
    property = Value::String(node.b->text);
  }
  return GetMember(object, property);
}

absl::StatusOr<CallArgs> Evaluator::EvalArgs(const NodeList& args, const ScopePtr& scope) {
  CallArgs out;
  for (const NodePtr& arg : args) {
    if (arg->kind == NodeKind::kKeywordArg || arg->kind == NodeKind::kKeywordSpread) continue;
    if (arg->kind == NodeKind::kSpread) {
      STRATA_ASSIGN_OR_RETURN(Value v, Eval(*arg->a, scope));
      if (!v.is_list()) {
        return absl::InvalidArgumentError(
            absl::StrCat("Cannot unpack non-iterable type: ", v.TypeName()));
      }
      for (const Value& item : v.list().items) out.positional.push_back(item);
      continue;
    }
    STRATA_ASSIGN_OR_RETURN(Value v, Eval(*arg, scope));
    out.positional.push_back(std::move(v));
  }
  auto add = [&out](const std::string& key, Value v) -> absl::Status {
    if (out.Keyword(key) != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("Got multiple values for keyword argument '", key, "'"));
    }
    out.keyword.emplace_back(key, std::move(v));
    return absl::OkStatus();
  };
  for (const NodePtr& arg : args) {
    if (arg->kind == NodeKind::kKeywordArg) {
      STRATA_ASSIGN_OR_RETURN(Value v, Eval(*arg->a, scope));
      STRATA_RETURN_IF_ERROR(add(arg->text, std::move(v)));
    } else if (arg->kind == NodeKind::kKeywordSpread) {
      STRATA_ASSIGN_OR_RETURN(Value v, Eval(*arg->a, scope));
      if (!v.is_dict()) {
        return absl::InvalidArgumentError(
            absl::StrCat("Argument after ** must be a mapping, not ", v.TypeName()));
      }
      for (const auto& [key, value] : v.dict().entries()) {
        STRATA_RETURN_IF_ERROR(add(key, value));
      }
    }
  }
  return out;
}

absl::StatusOr<Value> Evaluator::Call(const Value& fn, CallArgs args, const ScopePtr& scope) {
  if (!fn.is_function()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Cannot call something that is not a function: got ", fn.TypeName()));
  }
  if (++call_depth_ > limits_.max_call_depth) {
    --call_depth_;
    return absl::ResourceExhaustedError(absl::StrCat(
        "template exceeded the maximum call depth of ", limits_.max_call_depth));
  }
  absl::StatusOr<Value> result = fn.function()(*this, scope, std::move(args));
  --call_depth_;
  return result;
}

absl::StatusOr<Value> Evaluator::EvalCall(const Node& node, const ScopePtr& scope) {
  STRATA_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(node.items, scope));
  STRATA_ASSIGN_OR_RETURN(Value fn, Eval(*node.a, scope));
  return Call(fn, std::move(args), scope);
}

absl::StatusOr<Value> Evaluator::EvalUnary(const Node& node, const ScopePtr& scope) {
  STRATA_ASSIGN_OR_RETURN(Value v, Eval(*node.a, scope));
  if (node.text == "not") return Value::Bool(!v.Truthy());
  const bool negate = node.text == "-";
  if (v.is_float()) return Value::Float(negate ? -v.as_float() : v.as_float());
  if (v.is_int() || v.is_bool()) {
    const int64_t x = v.is_bool() ? v.as_bool() : v.as_int();
    return Value::Int(negate ? -x : x);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("Unknown operator \"", node.text, "\" for ", v.TypeName()));
}

absl::StatusOr<Value> Evaluator::EvalBinary(const Node& node, const ScopePtr& scope) {
  STRATA_ASSIGN_OR_RETURN(Value left, Eval(*node.a, scope));
  if (node.text == "and") return left.Truthy() ? Eval(*node.b, scope) : left;
  if (node.text == "or") return left.Truthy() ? left : Eval(*node.b, scope);
  STRATA_ASSIGN_OR_RETURN(Value right, Eval(*node.b, scope));
  if ((node.text == "+" || node.text == "~") && (left.is_string() || right.is_string())) {
    // Bound string growth before building the result.
    const size_t guess = (left.is_string() ? left.str().size() : 0) +
                         (right.is_string() ? right.str().size() : 0);
    STRATA_RETURN_IF_ERROR(CheckSize(guess));
  }
  STRATA_ASSIGN_OR_RETURN(Value result, BinaryOp(node.text, left, right));
  if (result.is_string()) STRATA_RETURN_IF_ERROR(CheckSize(result.str().size()));
  if (result.is_list()) STRATA_RETURN_IF_ERROR(Charge(result.list().items.size()));
  return result;
}

absl::StatusOr<Value> Evaluator::EvalTest(const Node& node, const ScopePtr& scope) {
  STRATA_ASSIGN_OR_RETURN(Value operand, Eval(*node.a, scope));
  STRATA_ASSIGN_OR_RETURN(bool result, RunTest(node.text, operand, nullptr));
  return Value::Bool(node.negate ? !result : result);
}

}  // namespace strata::chat

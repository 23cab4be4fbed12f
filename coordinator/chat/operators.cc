// Binary operators, in the order jinja-js's evaluateBinaryExpression tries them: equality
// first (loose, on any types), then undefined/none operands are errors (except `x in
// undefined`), `~`, `**`, arithmetic and comparison on numbers, list `+`, membership, string
// `+`. Integers are int64 (jinja-js uses doubles); overflow is an error instead of a silent
// loss of precision.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "coordinator/chat/builtins.h"
#include "coordinator/chat/value_ops.h"

namespace strata::chat {
namespace {

absl::Status Overflow(std::string_view op) {
  return absl::InvalidArgumentError(
      absl::StrCat("integer overflow in operator ", absl::string_view(op.data(), op.size())));
}

absl::StatusOr<Value> Power(const Value& a, const Value& b) {
  const double x = a.is_bool() ? a.as_bool() : a.as_number();
  const double y = b.is_bool() ? b.as_bool() : b.as_number();
  if (x == 0 && y < 0) return absl::InvalidArgumentError("0.0 cannot be raised to a negative power");
  const double r = std::pow(x, y);
  if (!std::isfinite(r)) {
    return absl::InvalidArgumentError("Exponentiation result is not a finite real number");
  }
  if (a.is_float() || b.is_float() || y < 0) return Value::Float(r);
  if (std::fabs(r) >= 9.2e18) return Overflow("**");
  // Exact integer power by repeated multiplication (pow() may round).
  int64_t base = a.is_bool() ? a.as_bool() : a.as_int();
  int64_t exp = b.is_bool() ? b.as_bool() : b.as_int();
  int64_t result = 1;
  for (; exp > 0; exp >>= 1) {  // |result| stays below 2^63: checked with pow() above
    if (exp & 1) result *= base;
    if (exp > 1) base = std::abs(base) < 3037000499 ? base * base : 0;
  }
  return Value::Int(result);
}

absl::StatusOr<Value> Arithmetic(std::string_view op, const Value& a, const Value& b) {
  const bool is_float = a.is_float() || b.is_float();
  if (op == "/") return Value::Float(a.as_number() / b.as_number());
  if (is_float) {
    const double x = a.as_number(), y = b.as_number();
    if (op == "+") return Value::Float(x + y);
    if (op == "-") return Value::Float(x - y);
    if (op == "*") return Value::Float(x * y);
    if (op == "//") return Value::Float(std::floor(x / y));
    if (op == "%") return Value::Float(std::fmod(x, y));
  } else {
    const int64_t x = a.as_int(), y = b.as_int();
    int64_t r = 0;
    if (op == "+") {
      if (__builtin_add_overflow(x, y, &r)) return Overflow(op);
      return Value::Int(r);
    }
    if (op == "-") {
      if (__builtin_sub_overflow(x, y, &r)) return Overflow(op);
      return Value::Int(r);
    }
    if (op == "*") {
      if (__builtin_mul_overflow(x, y, &r)) return Overflow(op);
      return Value::Int(r);
    }
    if (op == "//" || op == "%") {
      if (y == 0) return absl::InvalidArgumentError("integer division or modulo by zero");
      if (op == "%") return Value::Int(x % y);  // JavaScript: the sign follows the dividend
      return Value::Int(static_cast<int64_t>(std::floor(static_cast<double>(x) / y)));
    }
  }
  const double x = a.as_number(), y = b.as_number();
  if (op == "<") return Value::Bool(x < y);
  if (op == ">") return Value::Bool(x > y);
  if (op == "<=") return Value::Bool(x <= y);
  if (op == ">=") return Value::Bool(x >= y);
  return absl::InvalidArgumentError("");  // replaced by the caller's message
}

}  // namespace

absl::StatusOr<Value> BinaryOp(std::string_view op, const Value& a, const Value& b) {
  if (op == "==") return Value::Bool(LooseEquals(a, b));
  if (op == "!=") return Value::Bool(!LooseEquals(a, b));
  const bool membership = op == "in" || op == "not in";
  if (a.is_undefined() || b.is_undefined()) {
    if (b.is_undefined() && membership) return Value::Bool(op == "not in");
    return absl::InvalidArgumentError(absl::StrCat(
        "Cannot perform operation ", absl::string_view(op.data(), op.size()),
        " on undefined values"));
  }
  if (a.is_none() || b.is_none()) {
    return absl::InvalidArgumentError("Cannot perform operation on null values");
  }
  if (op == "~") return Value::String(JsString(a) + JsString(b));
  const bool a_numeric = a.is_number() || a.is_bool();
  const bool b_numeric = b.is_number() || b.is_bool();
  if (op == "**" && a_numeric && b_numeric) return Power(a, b);
  if (a.is_number() && b.is_number()) {
    absl::StatusOr<Value> r = Arithmetic(op, a, b);
    if (r.ok() || !r.status().message().empty()) return r;
  } else if (a.is_list() && b.is_list()) {
    if (op == "+") {
      std::vector<Value> items = a.list().items;
      items.insert(items.end(), b.list().items.begin(), b.list().items.end());
      return Value::List(std::move(items));
    }
  } else if (b.is_list()) {
    bool member = false;
    for (const Value& item : b.list().items) member = member || StrictEquals(item, a);
    if (op == "in") return Value::Bool(member);
    if (op == "not in") return Value::Bool(!member);
  }
  if ((a.is_string() || b.is_string()) && op == "+") {
    return Value::String(JsString(a) + JsString(b));
  }
  if (a.is_string() && b.is_string() && membership) {
    const bool found = b.str().find(a.str()) != std::string::npos;
    return Value::Bool(op == "in" ? found : !found);
  }
  if (a.is_string() && b.is_dict() && membership) {
    const bool found = b.dict().Find(a.str()) != nullptr;
    return Value::Bool(op == "in" ? found : !found);
  }
  return absl::InvalidArgumentError(absl::StrCat("Unknown operator \"",
                                                 absl::string_view(op.data(), op.size()),
                                                 "\" between ", a.TypeName(), " and ",
                                                 b.TypeName()));
}

}  // namespace strata::chat

// The built-in operations of the template language, each reproducing its jinja-js
// counterpart: binary operators (operators.cc), filters (filters.cc, filters_call.cc), tests,
// attribute/method access on values and the global functions (builtins.cc).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "coordinator/chat/ast.h"
#include "coordinator/chat/evaluator.h"
#include "coordinator/chat/value.h"

namespace strata::chat {

// `a op b` for every operator but `and` / `or` (which short-circuit in the evaluator).
absl::StatusOr<Value> BinaryOp(std::string_view op, const Value& a, const Value& b);

// `operand | filter`, where `filter` is an identifier or a call node (`join(", ")`).
absl::StatusOr<Value> ApplyFilter(Evaluator& ev, const Value& operand, const Node& filter,
                                  const ScopePtr& scope);

// `operand is name` (with `arg` for two-operand tests such as equalto in selectattr).
absl::StatusOr<bool> RunTest(std::string_view name, const Value& operand, const Value* arg);

// `object.name` / `object[property]` (not slices): dict entries, then the type's built-in
// members (string methods such as strip/split/startswith, dict get/items/keys/values,
// `length`); undefined when absent.
absl::StatusOr<Value> GetMember(const Value& object, const Value& property);

// The built-in methods of a dict (`get`, `items`, `keys`, `values`, `dictsort`), also
// reachable as filters (`x | items`, `x | dictsort(reverse=true)`).
absl::StatusOr<Value> DictMethod(const Value& dict, const std::string& name, CallArgs args);

// str.replace(old, new[, count]) with jinja-js's rules (an empty `old` inserts between code
// points).
absl::StatusOr<Value> StringReplace(const std::string& s, const CallArgs& args);

// Defines the globals: true/false/none (and True/False/None), namespace, range,
// raise_exception and strftime_now (reading `clock`).
void InstallGlobals(Scope& global, Clock clock);

// The message prefix of errors raised by the template's raise_exception().
inline constexpr std::string_view kRaisedPrefix = "raise_exception: ";

}  // namespace strata::chat

// Shared by filters.cc (filters without arguments) and filters_call.cc (with arguments).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "coordinator/chat/ast.h"
#include "coordinator/chat/evaluator.h"
#include "coordinator/chat/value.h"

namespace strata::chat {

// `list | sort(reverse, case_sensitive, attribute)`.
absl::StatusOr<Value> SortList(const Value& list, const CallArgs& args);

// String filters that take optional arguments: indent, replace, capitalize.
absl::StatusOr<Value> StringCallFilter(const Value& s, const std::string& name,
                                       const CallArgs& args);

// `operand | name(args...)`; `filter` is the kCall node.
absl::StatusOr<Value> CallFilter(Evaluator& ev, const Value& operand, const Node& filter,
                                 const ScopePtr& scope);

}  // namespace strata::chat

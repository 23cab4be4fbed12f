// Tokens -> syntax tree, following @huggingface/jinja's recursive-descent parser, so that
// precedence and its quirks match: `a if b` without `else` is a select expression, tests and
// filters bind tighter than `*`, `**` is left-associative, comparisons and `in` chain to the
// left, and statements are set / if / for / macro / call / filter / break / continue.
// Nesting deeper than kMaxParseDepth is rejected, so hostile templates cannot exhaust the stack.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/chat/ast.h"
#include "coordinator/chat/lexer.h"

namespace strata::chat {

// Deepest nesting of statements and expressions the parser accepts.
inline constexpr int kMaxParseDepth = 200;

// Parses a whole template. Errors are InvalidArgument "line N: ...".
absl::StatusOr<NodeList> Parse(const std::vector<Token>& tokens);

}  // namespace strata::chat

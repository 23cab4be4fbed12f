// Template text -> tokens, exactly as @huggingface/jinja's tokenize() with the options
// transformers sets (trim_blocks and lstrip_blocks on):
//
//  1. Preprocess: drop one trailing "\n"; lstrip_blocks removes spaces/tabs at the start of a
//     line before "{%", "{#" (and, as jinja-js's regex does, "{-"); trim_blocks removes the
//     "\n" right after "%}", "#}" (and "-}"); `{% generation %}` / `{% endgeneration %}` tags
//     (transformers' assistant-mask markers) are removed, honouring their "-" modifiers.
//  2. Scan: text outside tags; comments; "{%-", "-%}", "{{-", "-}}" strip whitespace on their
//     side; inside tags, operators, string literals (with \n \t \r \b \f \v \' \" \\ \xHH
//     \uHHHH escapes), numbers and identifiers. A "-" or "+" that cannot end an operand
//     starts a unary sign (folded into a following number, as jinja-js does).
//
// Each token records the 1-based line of the original template it came from.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace strata::chat {

enum class TokenType {
  kText,
  kNumber,        // "12", "-3", "1.5"
  kString,        // the unescaped contents
  kIdentifier,
  kEquals,        // =
  kOpenParen,
  kCloseParen,
  kOpenStatement,   // {%
  kCloseStatement,  // %}
  kOpenExpression,  // {{
  kCloseExpression, // }}
  kOpenBracket,
  kCloseBracket,
  kOpenBrace,
  kCloseBrace,
  kComma,
  kDot,
  kColon,
  kPipe,
  kAdditive,        // + - ~
  kMultiplicative,  // * / // %
  kPower,           // **
  kComparison,      // < > <= >= == !=
  kUnary,           // a lone unary - or +
  kComment,
};

// One token: its type, its text (operators as written, strings unescaped) and source line.
struct Token {
  TokenType type;
  std::string value;
  int line = 1;
};

// Human-readable token type name for parser errors ("CloseStatement", ...).
const char* TokenTypeName(TokenType type);

// Tokenizes `source`. Errors are InvalidArgument "line N: ..." (the caller adds the template
// name).
absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source);

}  // namespace strata::chat

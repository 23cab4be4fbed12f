// The syntax tree of a template, mirroring @huggingface/jinja's AST node for node.
//
// One Node type with a kind and generic slots keeps the parser and evaluator small; the slot
// layout of each kind is listed below. A template body is a list of nodes; evaluating one
// gives a Value whose printed form is appended to the output (statements such as `set`
// give none, which prints nothing).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace strata::chat {

enum class NodeKind {
  // Statements.
  kText,         // text: the literal text
  kComment,      //
  kIf,           // a: test; body; else_body (an `elif` is a nested kIf there)
  kFor,          // a: target (identifier or tuple); b: iterable; c: `if` filter or null;
                 // body; else_body
  kSet,          // a: target; b: value, or null for a block set (body)
  kMacro,        // text: name; items: parameters (identifier / keyword-argument); body
  kCallBlock,    // a: the call (kCall); items: caller parameters; body
  kFilterBlock,  // a: the filter (identifier or kCall); body
  kBreak,
  kContinue,
  // Expressions.
  kIdentifier,   // text: name
  kInt,          // int_value
  kFloat,        // float_value
  kString,       // text
  kList,         // items
  kTuple,        // items
  kDict,         // items: key, value, key, value, ...
  kMember,       // a: object; b: property (expression, kSlice, or identifier/int when
                 // !computed); computed
  kSlice,        // a, b, c: start, stop, step (each may be null)
  kCall,         // a: callee; items: arguments
  kKeywordArg,   // text: name; a: value
  kSpread,       // a: *value
  kKeywordSpread,  // a: **value
  kBinary,       // text: operator; a, b
  kUnary,        // text: operator ("not", "-", "+"); a
  kFilter,       // a: operand; b: filter (identifier or kCall)
  kTest,         // a: operand; text: test name; negate
  kSelect,       // a: value; b: condition (`a if b` without else)
  kTernary,      // a: condition; b: if true; c: if false
};

// One syntax tree node; see NodeKind for which slots each kind uses.
struct Node {
  NodeKind kind;
  int line = 0;   // 1-based source line
  int depth = 1;  // height of the expression tree below (bounded by the parser)
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  bool computed = false;
  bool negate = false;
  std::unique_ptr<Node> a, b, c;
  std::vector<std::unique_ptr<Node>> items;
  std::vector<std::unique_ptr<Node>> body;
  std::vector<std::unique_ptr<Node>> else_body;
};

using NodePtr = std::unique_ptr<Node>;
using NodeList = std::vector<NodePtr>;

}  // namespace strata::chat

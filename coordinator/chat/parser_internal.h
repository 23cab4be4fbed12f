// The parser's class, shared by parser.cc (statements) and parser_expressions.cc.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/status.h"
#include "coordinator/chat/ast.h"
#include "coordinator/chat/lexer.h"
#include "coordinator/chat/parser.h"

namespace strata::chat::parser_internal {


using T = TokenType;

// Recursive descent over the token list, one method per grammar rule of jinja-js.
class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : t_(tokens) {}

  absl::StatusOr<NodeList> Program() {
    NodeList body;
    while (pos_ < t_.size()) {
      STRATA_ASSIGN_OR_RETURN(NodePtr node, Any());
      body.push_back(std::move(node));
    }
    return body;
  }

 private:
  // Counts nesting for one recursive call.
  struct DepthGuard {
    explicit DepthGuard(int* d) : depth(d) { ++*depth; }
    ~DepthGuard() { --*depth; }
    int* depth;
  };

  int Line() const {
    if (t_.empty()) return 1;
    return t_[pos_ < t_.size() ? pos_ : t_.size() - 1].line;
  }
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", Line(), ": ", absl::string_view(what.data(), what.size())));
  }
  // Records the height of `n`'s expression tree and rejects trees taller than the evaluator
  // (and the destructor) may recurse through.
  absl::Status Track(Node* n) const {
    for (const NodePtr* child : {&n->a, &n->b, &n->c}) {
      if (*child) n->depth = std::max(n->depth, (*child)->depth + 1);
    }
    for (const NodePtr& item : n->items) {
      if (item) n->depth = std::max(n->depth, item->depth + 1);
    }
    if (n->depth > kMaxParseDepth) return Error("expression nested too deeply");
    return absl::OkStatus();
  }
  NodePtr Make(NodeKind kind, int line) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->line = line;
    return n;
  }

  bool Is(T type, size_t ahead = 0) const {
    return pos_ + ahead < t_.size() && t_[pos_ + ahead].type == type;
  }
  bool IsIdent(std::string_view name, size_t ahead = 0) const {
    return Is(T::kIdentifier, ahead) && t_[pos_ + ahead].value == name;
  }
  bool IsStatement(std::initializer_list<std::string_view> names) const {
    if (!Is(T::kOpenStatement) || !Is(T::kIdentifier, 1)) return false;
    for (std::string_view n : names) {
      if (t_[pos_ + 1].value == n) return true;
    }
    return false;
  }
  absl::Status Expect(T type, std::string_view what) {
    if (pos_ >= t_.size()) return Error(absl::StrCat("Unexpected end of template: ", Sv(what)));
    if (t_[pos_].type != type) {
      return Error(absl::StrCat("Parser Error: ", Sv(what), ". ", TokenTypeName(t_[pos_].type),
                                " !== ", TokenTypeName(type), "."));
    }
    ++pos_;
    return absl::OkStatus();
  }
  absl::Status ExpectIdent(std::string_view name) {
    if (!IsIdent(name)) return Error(absl::StrCat("Expected ", Sv(name)));
    ++pos_;
    return absl::OkStatus();
  }
  absl::Status ExpectEnd(std::string_view name) {
    STRATA_RETURN_IF_ERROR(Expect(T::kOpenStatement, "Expected {% token"));
    STRATA_RETURN_IF_ERROR(ExpectIdent(name));
    return Expect(T::kCloseStatement, "Expected %} token");
  }
  // Parses nodes into `out` until one of `names` starts a statement.
  absl::Status BodyUntil(std::initializer_list<std::string_view> names, NodeList* out) {
    while (!IsStatement(names)) {
      if (pos_ >= t_.size()) {
        return Error(absl::StrCat("Unexpected end of template: missing {% ", Sv(*names.begin()),
                                  " %}"));
      }
      STRATA_ASSIGN_OR_RETURN(NodePtr node, Any());
      out->push_back(std::move(node));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<NodePtr> Any() {
    DepthGuard guard(&depth_);
    if (depth_ > kMaxParseDepth) return Error("template nested too deeply");
    const Token& tok = t_[pos_];
    switch (tok.type) {
      case T::kComment:
      case T::kText: {
        NodePtr n = Make(tok.type == T::kText ? NodeKind::kText : NodeKind::kComment, tok.line);
        n->text = tok.value;
        ++pos_;
        return n;
      }
      case T::kOpenStatement: return Statement();
      case T::kOpenExpression: {
        ++pos_;
        STRATA_ASSIGN_OR_RETURN(NodePtr e, Expression());
        STRATA_RETURN_IF_ERROR(Expect(T::kCloseExpression, "Expected closing expression token"));
        return e;
      }
      default:
        return Error(absl::StrCat("Unexpected token type: ", TokenTypeName(tok.type)));
    }
  }

  absl::StatusOr<NodePtr> Statement();
  absl::StatusOr<NodePtr> SetStatement(int line);
  absl::StatusOr<NodePtr> IfStatement(int line);
  absl::StatusOr<NodePtr> ForStatement(int line);
  absl::StatusOr<NodePtr> MacroStatement(int line);
  absl::StatusOr<NodePtr> CallStatement(int line);
  absl::StatusOr<NodePtr> FilterStatement(int line);

  absl::StatusOr<NodePtr> Sequence(bool primary);
  absl::StatusOr<NodePtr> Expression();
  absl::StatusOr<NodePtr> IfExpression();
  absl::StatusOr<NodePtr> LogicalOr();
  absl::StatusOr<NodePtr> LogicalAnd();
  absl::StatusOr<NodePtr> LogicalNot();
  absl::StatusOr<NodePtr> Comparison();
  absl::StatusOr<NodePtr> Additive();
  absl::StatusOr<NodePtr> Multiplicative();
  absl::StatusOr<NodePtr> Power();
  absl::StatusOr<NodePtr> TestExpr();
  absl::StatusOr<NodePtr> FilterExpr();
  absl::StatusOr<NodePtr> UnarySign();
  absl::StatusOr<NodePtr> CallMember();
  absl::StatusOr<NodePtr> CallExpr(NodePtr callee);
  absl::Status Args(bool parameters, NodeList* out);
  absl::StatusOr<NodePtr> MemberArgs(int line);
  absl::StatusOr<NodePtr> Member(NodePtr object);
  absl::StatusOr<NodePtr> Primary();

  const std::vector<Token>& t_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace strata::chat::parser_internal

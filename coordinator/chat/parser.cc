#include "coordinator/chat/parser.h"

#include "coordinator/chat/parser_internal.h"

namespace strata::chat {
namespace parser_internal {

absl::StatusOr<NodePtr> Parser::Statement() {
  const int line = Line();
  STRATA_RETURN_IF_ERROR(Expect(T::kOpenStatement, "Expected opening statement token"));
  if (!Is(T::kIdentifier)) {
    return Error(absl::StrCat("Unknown statement, got ",
                              pos_ < t_.size() ? TokenTypeName(t_[pos_].type) : "end"));
  }
  const std::string name = t_[pos_++].value;
  if (name == "set") return SetStatement(line);
  if (name == "if") {
    STRATA_ASSIGN_OR_RETURN(NodePtr n, IfStatement(line));
    STRATA_RETURN_IF_ERROR(ExpectEnd("endif"));
    return n;
  }
  if (name == "macro") {
    STRATA_ASSIGN_OR_RETURN(NodePtr n, MacroStatement(line));
    STRATA_RETURN_IF_ERROR(ExpectEnd("endmacro"));
    return n;
  }
  if (name == "for") {
    STRATA_ASSIGN_OR_RETURN(NodePtr n, ForStatement(line));
    STRATA_RETURN_IF_ERROR(ExpectEnd("endfor"));
    return n;
  }
  if (name == "call") return CallStatement(line);
  if (name == "filter") return FilterStatement(line);
  if (name == "break" || name == "continue") {
    STRATA_RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected closing statement token"));
    return Make(name == "break" ? NodeKind::kBreak : NodeKind::kContinue, line);
  }
  return Error(absl::StrCat("Unknown statement type: ", name));
}

absl::StatusOr<NodePtr> Parser::SetStatement(int line) {
  NodePtr n = Make(NodeKind::kSet, line);
  STRATA_ASSIGN_OR_RETURN(n->a, Sequence(false));
  if (Is(T::kEquals)) {
    ++pos_;
    STRATA_ASSIGN_OR_RETURN(n->b, Sequence(false));
  } else {
    STRATA_RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected %} token"));
    STRATA_RETURN_IF_ERROR(BodyUntil({"endset"}, &n->body));
    STRATA_RETURN_IF_ERROR(Expect(T::kOpenStatement, "Expected {% token"));
    STRATA_RETURN_IF_ERROR(ExpectIdent("endset"));
  }
  STRATA_RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected closing statement token"));
  return n;
}

absl::StatusOr<NodePtr> Parser::IfStatement(int line) {
  DepthGuard guard(&depth_);
  if (depth_ > kMaxParseDepth) return Error("template nested too deeply");
  NodePtr n = Make(NodeKind::kIf, line);
  STRATA_ASSIGN_OR_RETURN(n->a, Expression());
  STRATA_RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected closing statement token"));
  STRATA_RETURN_IF_ERROR(BodyUntil({"elif", "else", "endif"}, &n->body));
  if (IsStatement({"elif"})) {
    const int elif_line = Line();
    pos_ += 2;
    STRATA_ASSIGN_OR_RETURN(NodePtr nested, IfStatement(elif_line));
    n->else_body.push_back(std::move(nested));
  } else if (IsStatement({"else"})) {
    pos_ += 2;
    STRATA_RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected closing statement token"));
    STRATA_RETURN_IF_ERROR(BodyUntil({"endif"}, &n->else_body));
  }
  return n;
}

absl::StatusOr<NodePtr> Parser::MacroStatement(int line) {
  NodePtr n = Make(NodeKind::kMacro, line);
  STRATA_ASSIGN_OR_RETURN(NodePtr name, Primary());
  if (name->kind != NodeKind::kIdentifier) {
    return Error("Expected identifier following macro statement");
  }
  n->text = name->text;
  STRATA_RETURN_IF_ERROR(Args(/*parameters=*/true, &n->items));
  STRATA_RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected closing statement token"));
  STRATA_RETURN_IF_ERROR(BodyUntil({"endmacro"}, &n->body));
  return n;
}

absl::StatusOr<NodePtr> Parser::ForStatement(int line) {
  NodePtr n = Make(NodeKind::kFor, line);
  STRATA_ASSIGN_OR_RETURN(n->a, Sequence(true));
  if (n->a->kind != NodeKind::kIdentifier && n->a->kind != NodeKind::kTuple) {
    return Error("Expected identifier/tuple for the loop variable");
  }
  if (!IsIdent("in")) return Error("Expected `in` keyword following loop variable");
  ++pos_;
  STRATA_ASSIGN_OR_RETURN(NodePtr iterable, Expression());
  if (iterable->kind == NodeKind::kSelect) {
    n->b = std::move(iterable->a);
    n->c = std::move(iterable->b);
  } else {
    n->b = std::move(iterable);
  }
  STRATA_RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected closing statement token"));
  STRATA_RETURN_IF_ERROR(BodyUntil({"endfor", "else"}, &n->body));
  if (IsStatement({"else"})) {
    pos_ += 2;
    STRATA_RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected closing statement token"));
    STRATA_RETURN_IF_ERROR(BodyUntil({"endfor"}, &n->else_body));
  }
  return n;
}

absl::StatusOr<NodePtr> Parser::CallStatement(int line) {
  NodePtr n = Make(NodeKind::kCallBlock, line);
  if (Is(T::kOpenParen)) STRATA_RETURN_IF_ERROR(Args(/*parameters=*/true, &n->items));
  STRATA_ASSIGN_OR_RETURN(NodePtr callee, Primary());
  if (callee->kind != NodeKind::kIdentifier) {
    return Error("Expected identifier following call statement");
  }
  n->a = Make(NodeKind::kCall, line);
  n->a->a = std::move(callee);
  STRATA_RETURN_IF_ERROR(Args(/*parameters=*/false, &n->a->items));
  STRATA_RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected closing statement token"));
  STRATA_RETURN_IF_ERROR(BodyUntil({"endcall"}, &n->body));
  STRATA_RETURN_IF_ERROR(ExpectEnd("endcall"));
  return n;
}

absl::StatusOr<NodePtr> Parser::FilterStatement(int line) {
  NodePtr n = Make(NodeKind::kFilterBlock, line);
  STRATA_ASSIGN_OR_RETURN(n->a, Primary());
  if (n->a->kind == NodeKind::kIdentifier && Is(T::kOpenParen)) {
    STRATA_ASSIGN_OR_RETURN(n->a, CallExpr(std::move(n->a)));
  }
  STRATA_RETURN_IF_ERROR(Expect(T::kCloseStatement, "Expected closing statement token"));
  STRATA_RETURN_IF_ERROR(BodyUntil({"endfilter"}, &n->body));
  STRATA_RETURN_IF_ERROR(ExpectEnd("endfilter"));
  return n;
}

}  // namespace parser_internal

absl::StatusOr<NodeList> Parse(const std::vector<Token>& tokens) {
  return parser_internal::Parser(tokens).Program();
}

}  // namespace strata::chat

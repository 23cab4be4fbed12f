// Expression rules of the parser, lowest precedence first (see parser.h).
#include <cerrno>
#include <cstdlib>

#include "coordinator/chat/parser_internal.h"

namespace strata::chat::parser_internal {

absl::StatusOr<NodePtr> Parser::Sequence(bool primary) {
  const int line = Line();
  NodeList items;
  STRATA_ASSIGN_OR_RETURN(NodePtr first, primary ? Primary() : Expression());
  if (!Is(T::kComma)) return first;
  items.push_back(std::move(first));
  while (Is(T::kComma)) {
    ++pos_;
    STRATA_ASSIGN_OR_RETURN(NodePtr next, primary ? Primary() : Expression());
    items.push_back(std::move(next));
  }
  NodePtr tuple = Make(NodeKind::kTuple, line);
  tuple->items = std::move(items);
  STRATA_RETURN_IF_ERROR(Track(tuple.get()));
  return tuple;
}

absl::StatusOr<NodePtr> Parser::Expression() {
  DepthGuard guard(&depth_);
  if (depth_ > kMaxParseDepth) return Error("expression nested too deeply");
  return IfExpression();
}

absl::StatusOr<NodePtr> Parser::IfExpression() {
  STRATA_ASSIGN_OR_RETURN(NodePtr value, LogicalOr());
  if (!IsIdent("if")) return value;
  const int line = Line();
  ++pos_;
  STRATA_ASSIGN_OR_RETURN(NodePtr test, LogicalOr());
  if (IsIdent("else")) {
    ++pos_;
    NodePtr n = Make(NodeKind::kTernary, line);
    n->a = std::move(test);
    n->b = std::move(value);
    DepthGuard guard(&depth_);
    if (depth_ > kMaxParseDepth) return Error("expression nested too deeply");
    STRATA_ASSIGN_OR_RETURN(n->c, IfExpression());
    STRATA_RETURN_IF_ERROR(Track(n.get()));
    return n;
  }
  NodePtr n = Make(NodeKind::kSelect, line);
  n->a = std::move(value);
  n->b = std::move(test);
  STRATA_RETURN_IF_ERROR(Track(n.get()));
  return n;
}

namespace {

NodePtr Binary(std::string op, NodePtr left, NodePtr right, int line) {
  auto n = std::make_unique<Node>();
  n->kind = NodeKind::kBinary;
  n->line = line;
  n->text = std::move(op);
  n->a = std::move(left);
  n->b = std::move(right);
  return n;
}

}  // namespace

absl::StatusOr<NodePtr> Parser::LogicalOr() {
  STRATA_ASSIGN_OR_RETURN(NodePtr left, LogicalAnd());
  while (IsIdent("or")) {
    const int line = Line();
    ++pos_;
    STRATA_ASSIGN_OR_RETURN(NodePtr right, LogicalAnd());
    left = Binary("or", std::move(left), std::move(right), line);
    STRATA_RETURN_IF_ERROR(Track(left.get()));
  }
  return left;
}

absl::StatusOr<NodePtr> Parser::LogicalAnd() {
  STRATA_ASSIGN_OR_RETURN(NodePtr left, LogicalNot());
  while (IsIdent("and")) {
    const int line = Line();
    ++pos_;
    STRATA_ASSIGN_OR_RETURN(NodePtr right, LogicalNot());
    left = Binary("and", std::move(left), std::move(right), line);
    STRATA_RETURN_IF_ERROR(Track(left.get()));
  }
  return left;
}

absl::StatusOr<NodePtr> Parser::LogicalNot() {
  if (!IsIdent("not")) return Comparison();
  DepthGuard guard(&depth_);
  if (depth_ > kMaxParseDepth) return Error("expression nested too deeply");
  NodePtr n = Make(NodeKind::kUnary, Line());
  n->text = "not";
  ++pos_;
  STRATA_ASSIGN_OR_RETURN(n->a, LogicalNot());
  STRATA_RETURN_IF_ERROR(Track(n.get()));
  return n;
}

absl::StatusOr<NodePtr> Parser::Comparison() {
  STRATA_ASSIGN_OR_RETURN(NodePtr left, Additive());
  while (true) {
    const int line = Line();
    std::string op;
    if (IsIdent("not") && IsIdent("in", 1)) {
      op = "not in";
      pos_ += 2;
    } else if (IsIdent("in")) {
      op = "in";
      ++pos_;
    } else if (Is(T::kComparison)) {
      op = t_[pos_++].value;
    } else {
      break;
    }
    STRATA_ASSIGN_OR_RETURN(NodePtr right, Additive());
    left = Binary(std::move(op), std::move(left), std::move(right), line);
    STRATA_RETURN_IF_ERROR(Track(left.get()));
  }
  return left;
}

absl::StatusOr<NodePtr> Parser::Additive() {
  STRATA_ASSIGN_OR_RETURN(NodePtr left, Multiplicative());
  while (Is(T::kAdditive)) {
    const int line = Line();
    std::string op = t_[pos_++].value;
    STRATA_ASSIGN_OR_RETURN(NodePtr right, Multiplicative());
    left = Binary(std::move(op), std::move(left), std::move(right), line);
    STRATA_RETURN_IF_ERROR(Track(left.get()));
  }
  return left;
}

absl::StatusOr<NodePtr> Parser::Multiplicative() {
  STRATA_ASSIGN_OR_RETURN(NodePtr left, Power());
  while (Is(T::kMultiplicative)) {
    const int line = Line();
    std::string op = t_[pos_++].value;
    STRATA_ASSIGN_OR_RETURN(NodePtr right, Power());
    left = Binary(std::move(op), std::move(left), std::move(right), line);
    STRATA_RETURN_IF_ERROR(Track(left.get()));
  }
  return left;
}

absl::StatusOr<NodePtr> Parser::Power() {
  STRATA_ASSIGN_OR_RETURN(NodePtr left, TestExpr());
  while (Is(T::kPower)) {
    const int line = Line();
    ++pos_;
    STRATA_ASSIGN_OR_RETURN(NodePtr right, TestExpr());
    left = Binary("**", std::move(left), std::move(right), line);
    STRATA_RETURN_IF_ERROR(Track(left.get()));
  }
  return left;
}

absl::StatusOr<NodePtr> Parser::TestExpr() {
  STRATA_ASSIGN_OR_RETURN(NodePtr operand, FilterExpr());
  while (IsIdent("is")) {
    NodePtr n = Make(NodeKind::kTest, Line());
    ++pos_;
    n->negate = IsIdent("not");
    if (n->negate) ++pos_;
    if (pos_ >= t_.size()) return Error("Unexpected end of template after `is`");
    STRATA_ASSIGN_OR_RETURN(NodePtr test, Primary());
    if (test->kind != NodeKind::kIdentifier) return Error("Expected identifier for the test");
    n->text = test->text;
    n->a = std::move(operand);
    STRATA_RETURN_IF_ERROR(Track(n.get()));
    operand = std::move(n);
  }
  return operand;
}

absl::StatusOr<NodePtr> Parser::FilterExpr() {
  STRATA_ASSIGN_OR_RETURN(NodePtr operand, UnarySign());
  while (Is(T::kPipe)) {
    NodePtr n = Make(NodeKind::kFilter, Line());
    ++pos_;
    if (pos_ >= t_.size()) return Error("Unexpected end of template after `|`");
    STRATA_ASSIGN_OR_RETURN(NodePtr filter, Primary());
    if (filter->kind != NodeKind::kIdentifier) return Error("Expected identifier for the filter");
    if (Is(T::kOpenParen)) {
      STRATA_ASSIGN_OR_RETURN(filter, CallExpr(std::move(filter)));
    }
    n->a = std::move(operand);
    n->b = std::move(filter);
    STRATA_RETURN_IF_ERROR(Track(n.get()));
    operand = std::move(n);
  }
  return operand;
}

absl::StatusOr<NodePtr> Parser::UnarySign() {
  if ((Is(T::kUnary) || Is(T::kAdditive)) && (t_[pos_].value == "-" || t_[pos_].value == "+")) {
    DepthGuard guard(&depth_);
    if (depth_ > kMaxParseDepth) return Error("expression nested too deeply");
    NodePtr n = Make(NodeKind::kUnary, Line());
    n->text = t_[pos_++].value;
    STRATA_ASSIGN_OR_RETURN(n->a, UnarySign());
    STRATA_RETURN_IF_ERROR(Track(n.get()));
    return n;
  }
  return CallMember();
}

absl::StatusOr<NodePtr> Parser::CallMember() {
  STRATA_ASSIGN_OR_RETURN(NodePtr primary, Primary());
  STRATA_ASSIGN_OR_RETURN(NodePtr member, Member(std::move(primary)));
  if (Is(T::kOpenParen)) return CallExpr(std::move(member));
  return member;
}

absl::StatusOr<NodePtr> Parser::CallExpr(NodePtr callee) {
  while (true) {
    NodePtr call = Make(NodeKind::kCall, Line());
    call->a = std::move(callee);
    STRATA_RETURN_IF_ERROR(Args(/*parameters=*/false, &call->items));
    STRATA_RETURN_IF_ERROR(Track(call.get()));
    STRATA_ASSIGN_OR_RETURN(callee, Member(std::move(call)));
    if (!Is(T::kOpenParen)) return callee;
  }
}

absl::Status Parser::Args(bool parameters, NodeList* out) {
  STRATA_RETURN_IF_ERROR(
      Expect(T::kOpenParen, "Expected opening parenthesis for arguments list"));
  bool saw_keyword = false, saw_spread = false;
  std::vector<std::string> names;
  while (!Is(T::kCloseParen)) {
    if (pos_ >= t_.size()) return Error("Unexpected end of template in arguments list");
    const int line = Line();
    const bool keyword_spread = Is(T::kPower);
    const bool spread = Is(T::kMultiplicative) && t_[pos_].value == "*";
    if (parameters && (keyword_spread || spread)) {
      return Error("Argument unpacking is not allowed in parameter declarations");
    }
    if (keyword_spread) {
      ++pos_;
      NodePtr n = Make(NodeKind::kKeywordSpread, line);
      STRATA_ASSIGN_OR_RETURN(n->a, Expression());
      STRATA_RETURN_IF_ERROR(Track(n.get()));
      out->push_back(std::move(n));
      if (Is(T::kComma)) ++pos_;
      if (!Is(T::kCloseParen)) {
        return Error("Expected closing parenthesis: `**` must be applied to the final argument");
      }
      break;
    }
    NodePtr arg;
    if (spread) {
      if (saw_spread) return Error("Only one `*` argument unpacking is allowed");
      saw_spread = true;
      ++pos_;
      arg = Make(NodeKind::kSpread, line);
      STRATA_ASSIGN_OR_RETURN(arg->a, Expression());
      STRATA_RETURN_IF_ERROR(Track(arg.get()));
    } else {
      STRATA_ASSIGN_OR_RETURN(arg, Expression());
      if (Is(T::kEquals)) {
        ++pos_;
        if (arg->kind != NodeKind::kIdentifier) {
          return Error(parameters ? "Expected identifier for parameter declaration"
                                  : "Expected identifier for keyword argument");
        }
        NodePtr kw = Make(NodeKind::kKeywordArg, line);
        kw->text = arg->text;
        STRATA_ASSIGN_OR_RETURN(kw->a, Expression());
        STRATA_RETURN_IF_ERROR(Track(kw.get()));
        arg = std::move(kw);
      }
      if (parameters) {
        if (arg->kind != NodeKind::kIdentifier && arg->kind != NodeKind::kKeywordArg) {
          return Error("Expected identifier for parameter declaration");
        }
        for (const std::string& seen : names) {
          if (seen == arg->text) return Error(absl::StrCat("Duplicate parameter name: ", seen));
        }
        names.push_back(arg->text);
      }
      if (arg->kind == NodeKind::kKeywordArg) {
        saw_keyword = true;
      } else if (saw_keyword) {
        return Error(parameters ? "Non-default argument follows default argument"
                                : "Positional arguments must come before keyword arguments");
      } else if (saw_spread) {
        return Error("Positional arguments must not follow `*` argument unpacking");
      }
    }
    out->push_back(std::move(arg));
    if (Is(T::kComma)) ++pos_;
  }
  return Expect(T::kCloseParen, "Expected closing parenthesis for arguments list");
}

absl::StatusOr<NodePtr> Parser::MemberArgs(int line) {
  NodeList slices;  // null entries are omitted slice parts
  bool is_slice = false;
  while (!Is(T::kCloseBracket)) {
    if (pos_ >= t_.size()) return Error("Unexpected end of template in subscript");
    if (Is(T::kColon)) {
      slices.push_back(nullptr);
      ++pos_;
      is_slice = true;
    } else {
      STRATA_ASSIGN_OR_RETURN(NodePtr e, Expression());
      slices.push_back(std::move(e));
      if (Is(T::kColon)) {
        ++pos_;
        is_slice = true;
      }
    }
  }
  if (slices.empty()) return Error("Expected at least one argument for member/slice expression");
  if (!is_slice) return std::move(slices[0]);
  if (slices.size() > 3) return Error("Expected 0-3 arguments for slice expression");
  NodePtr n = Make(NodeKind::kSlice, line);
  slices.resize(3);
  n->a = std::move(slices[0]);
  n->b = std::move(slices[1]);
  n->c = std::move(slices[2]);
  STRATA_RETURN_IF_ERROR(Track(n.get()));
  return n;
}

absl::StatusOr<NodePtr> Parser::Member(NodePtr object) {
  while (Is(T::kDot) || Is(T::kOpenBracket)) {
    NodePtr n = Make(NodeKind::kMember, Line());
    n->computed = Is(T::kOpenBracket);
    ++pos_;
    if (pos_ >= t_.size()) return Error("Unexpected end of template after member access");
    if (n->computed) {
      STRATA_ASSIGN_OR_RETURN(n->b, MemberArgs(n->line));
      STRATA_RETURN_IF_ERROR(Expect(T::kCloseBracket, "Expected closing square bracket"));
    } else {
      STRATA_ASSIGN_OR_RETURN(n->b, Primary());
      if (n->b->kind != NodeKind::kIdentifier && n->b->kind != NodeKind::kInt) {
        return Error("Expected identifier or integer following dot operator");
      }
    }
    n->a = std::move(object);
    STRATA_RETURN_IF_ERROR(Track(n.get()));
    object = std::move(n);
  }
  return object;
}

absl::StatusOr<NodePtr> Parser::Primary() {
  if (pos_ >= t_.size()) return Error("Unexpected end of template in expression");
  const Token& tok = t_[pos_++];
  switch (tok.type) {
    case T::kNumber: {
      if (tok.value.find('.') != std::string::npos) {
        NodePtr n = Make(NodeKind::kFloat, tok.line);
        n->float_value = std::strtod(tok.value.c_str(), nullptr);
        return n;
      }
      NodePtr n = Make(NodeKind::kInt, tok.line);
      errno = 0;
      n->int_value = std::strtoll(tok.value.c_str(), nullptr, 10);
      if (errno == ERANGE) return Error(absl::StrCat("integer literal out of range: ", tok.value));
      return n;
    }
    case T::kString: {
      NodePtr n = Make(NodeKind::kString, tok.line);
      n->text = tok.value;
      while (Is(T::kString)) n->text += t_[pos_++].value;
      return n;
    }
    case T::kIdentifier: {
      NodePtr n = Make(NodeKind::kIdentifier, tok.line);
      n->text = tok.value;
      return n;
    }
    case T::kOpenParen: {
      DepthGuard guard(&depth_);
      if (depth_ > kMaxParseDepth) return Error("expression nested too deeply");
      STRATA_ASSIGN_OR_RETURN(NodePtr e, Sequence(false));
      STRATA_RETURN_IF_ERROR(Expect(T::kCloseParen, "Expected closing parenthesis"));
      return e;
    }
    case T::kOpenBracket:
    case T::kOpenBrace: {
      DepthGuard guard(&depth_);
      if (depth_ > kMaxParseDepth) return Error("expression nested too deeply");
      const bool list = tok.type == T::kOpenBracket;
      const T close = list ? T::kCloseBracket : T::kCloseBrace;
      NodePtr n = Make(list ? NodeKind::kList : NodeKind::kDict, tok.line);
      while (!Is(close)) {
        if (pos_ >= t_.size()) return Error("Unexpected end of template in literal");
        STRATA_ASSIGN_OR_RETURN(NodePtr e, Expression());
        n->items.push_back(std::move(e));
        if (!list) {
          STRATA_RETURN_IF_ERROR(
              Expect(T::kColon, "Expected colon between key and value in object literal"));
          STRATA_ASSIGN_OR_RETURN(NodePtr v, Expression());
          n->items.push_back(std::move(v));
        }
        if (Is(T::kComma)) ++pos_;
      }
      ++pos_;
      STRATA_RETURN_IF_ERROR(Track(n.get()));
      return n;
    }
    default:
      return Error(absl::StrCat("Unexpected token: ", TokenTypeName(tok.type)));
  }
}

}  // namespace strata::chat::parser_internal

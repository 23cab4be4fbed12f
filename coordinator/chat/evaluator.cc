#include "coordinator/chat/evaluator.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "coordinator/chat/builtins.h"
#include "coordinator/chat/value_ops.h"

namespace strata::chat {
namespace {

constexpr std::string_view kBreak = "\x01" "break";
constexpr std::string_view kContinue = "\x01" "continue";

absl::Status LoopControl(std::string_view which) {
  return absl::AbortedError(absl::string_view(which.data(), which.size()));
}
bool IsControl(const absl::Status& s, std::string_view which) {
  return s.code() == absl::StatusCode::kAborted &&
         s.message() == absl::string_view(which.data(), which.size());
}

// True when any identifier in the subtree is `name` (how a macro body asks for kwargs/varargs).
bool Mentions(const Node& n, std::string_view name) {
  if (n.kind == NodeKind::kIdentifier && n.text == name) return true;
  for (const NodePtr* child : {&n.a, &n.b, &n.c}) {
    if (*child && Mentions(**child, name)) return true;
  }
  for (const NodeList* list : {&n.items, &n.body, &n.else_body}) {
    for (const NodePtr& item : *list) {
      if (item && Mentions(*item, name)) return true;
    }
  }
  return false;
}

bool BodyMentions(const Node& owner, std::string_view name) {
  for (const NodePtr& item : owner.items) {
    if (item->text == name) return false;  // a parameter of that name
  }
  for (const NodePtr& st : owner.body) {
    if (Mentions(*st, name)) return true;
  }
  return false;
}

}  // namespace

bool IsLoopControl(const absl::Status& status) {
  return IsControl(status, kBreak) || IsControl(status, kContinue);
}

Value Scope::Lookup(std::string_view name) const {
  const absl::string_view key(name.data(), name.size());
  for (const Scope* s = this; s != nullptr; s = s->parent_.get()) {
    auto it = s->vars_.find(key);
    if (it != s->vars_.end()) return it->second;
  }
  return Value();
}

bool Scope::HasLocal(std::string_view name) const {
  return vars_.contains(absl::string_view(name.data(), name.size()));
}

absl::Status Evaluator::Charge(int64_t n) {
  steps_ += n;
  if (steps_ > limits_.max_steps) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "template exceeded its evaluation budget of ", limits_.max_steps,
        " steps (a loop or recursion too large)"));
  }
  return absl::OkStatus();
}

absl::Status Evaluator::CheckSize(size_t size) const {
  if (static_cast<int64_t>(size) > limits_.max_output_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "template built a string larger than ", limits_.max_output_bytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Evaluator::Run(const NodeList& body, const ScopePtr& global) {
  absl::StatusOr<std::string> out = Block(body, global);
  if (!out.ok() && IsLoopControl(out.status())) {
    return absl::InvalidArgumentError(absl::StrCat(
        IsControl(out.status(), kBreak) ? "break" : "continue", " outside of a loop"));
  }
  return out;
}

absl::StatusOr<std::string> Evaluator::Block(const NodeList& body, const ScopePtr& scope) {
  std::string out;
  for (const NodePtr& st : body) {
    STRATA_ASSIGN_OR_RETURN(Value v, Eval(*st, scope));
    if (v.is_none() || v.is_undefined()) continue;
    if (v.is_string()) {
      out += v.str();
    } else {
      absl::StatusOr<std::string> text = Display(v);
      if (!text.ok()) {
        if (error_line_ == 0) error_line_ = st->line;
        return text.status();
      }
      out += *text;
    }
    STRATA_RETURN_IF_ERROR(CheckSize(out.size()));
  }
  return out;
}

absl::StatusOr<Value> Evaluator::Eval(const Node& node, const ScopePtr& scope) {
  STRATA_RETURN_IF_ERROR(Charge(1));
  if (++eval_depth_ > limits_.max_eval_depth) {
    --eval_depth_;
    if (error_line_ == 0) error_line_ = node.line;
    return absl::ResourceExhaustedError("template nested too deeply while rendering");
  }
  absl::StatusOr<Value> v = EvalNode(node, scope);
  --eval_depth_;
  if (!v.ok() && error_line_ == 0 && !IsLoopControl(v.status())) error_line_ = node.line;
  return v;
}

absl::StatusOr<Value> Evaluator::EvalNode(const Node& node, const ScopePtr& scope) {
  switch (node.kind) {
    case NodeKind::kText:
    case NodeKind::kString: return Value::String(node.text);
    case NodeKind::kComment: return Value::MakeNone();
    case NodeKind::kIf: {
      STRATA_ASSIGN_OR_RETURN(Value test, Eval(*node.a, scope));
      STRATA_ASSIGN_OR_RETURN(std::string out,
                              Block(test.Truthy() ? node.body : node.else_body, scope));
      return Value::String(std::move(out));
    }
    case NodeKind::kFor: return EvalFor(node, scope);
    case NodeKind::kSet: return EvalSet(node, scope);
    case NodeKind::kMacro: return EvalMacro(node, scope);
    case NodeKind::kCallBlock: return EvalCallBlock(node, scope);
    case NodeKind::kFilterBlock: {
      STRATA_ASSIGN_OR_RETURN(std::string body, Block(node.body, scope));
      return ApplyFilter(*this, Value::String(std::move(body)), *node.a, scope);
    }
    case NodeKind::kBreak: return LoopControl(kBreak);
    case NodeKind::kContinue: return LoopControl(kContinue);
    case NodeKind::kIdentifier: return scope->Lookup(node.text);
    case NodeKind::kInt: return Value::Int(node.int_value);
    case NodeKind::kFloat: return Value::Float(node.float_value);
    case NodeKind::kList:
    case NodeKind::kTuple:
    case NodeKind::kDict: return EvalLiteral(node, scope);
    case NodeKind::kMember: return EvalMember(node, scope);
    case NodeKind::kCall: return EvalCall(node, scope);
    case NodeKind::kUnary: return EvalUnary(node, scope);
    case NodeKind::kBinary: return EvalBinary(node, scope);
    case NodeKind::kFilter: {
      STRATA_ASSIGN_OR_RETURN(Value operand, Eval(*node.a, scope));
      return ApplyFilter(*this, operand, *node.b, scope);
    }
    case NodeKind::kTest: return EvalTest(node, scope);
    case NodeKind::kSelect: {
      STRATA_ASSIGN_OR_RETURN(Value test, Eval(*node.b, scope));
      if (!test.Truthy()) return Value();
      return Eval(*node.a, scope);
    }
    case NodeKind::kTernary: {
      STRATA_ASSIGN_OR_RETURN(Value test, Eval(*node.a, scope));
      return Eval(test.Truthy() ? *node.b : *node.c, scope);
    }
    default:
      return absl::InvalidArgumentError("Unknown node type in this position");
  }
}

namespace {

// Binds a for-loop target (identifier or tuple of identifiers) to `item`.
absl::Status AssignLoopTarget(const Node& target, const Value& item, Scope& scope) {
  if (target.kind == NodeKind::kIdentifier) {
    scope.Set(target.text, item);
    return absl::OkStatus();
  }
  if (!item.is_list() || item.is_tuple()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Cannot unpack non-iterable type: ", item.TypeName()));
  }
  const auto& values = item.list().items;
  if (values.size() != target.items.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Too ", target.items.size() > values.size() ? "few" : "many", " items to unpack"));
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (target.items[i]->kind != NodeKind::kIdentifier) {
      return absl::InvalidArgumentError("Cannot unpack non-identifier type");
    }
    scope.Set(target.items[i]->text, values[i]);
  }
  return absl::OkStatus();
}

Value LoopInfo(const std::vector<Value>& items, size_t i) {
  const auto n = static_cast<int64_t>(items.size());
  const auto k = static_cast<int64_t>(i);
  Value loop = Value::MakeDict();
  DictData& d = loop.mutable_dict();
  d.Reserve(9);
  d.Set("index", Value::Int(k + 1));
  d.Set("index0", Value::Int(k));
  d.Set("revindex", Value::Int(n - k));
  d.Set("revindex0", Value::Int(n - k - 1));
  d.Set("first", Value::Bool(k == 0));
  d.Set("last", Value::Bool(k == n - 1));
  d.Set("length", Value::Int(n));
  d.Set("previtem", k > 0 ? items[i - 1] : Value());
  d.Set("nextitem", k < n - 1 ? items[i + 1] : Value());
  return loop;
}

}  // namespace

absl::StatusOr<Value> Evaluator::EvalFor(const Node& node, const ScopePtr& scope) {
  auto loop_scope = std::make_shared<Scope>(scope);
  STRATA_ASSIGN_OR_RETURN(Value iterable, Eval(*node.b, loop_scope));
  if (iterable.is_dict()) {
    std::vector<Value> keys;
    for (const auto& [key, value] : iterable.dict().entries()) keys.push_back(Value::String(key));
    iterable = Value::List(std::move(keys));
  } else if (!iterable.is_list()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Expected iterable or object type in for loop: got ", iterable.TypeName()));
  }
  std::vector<Value> items;
  for (const Value& item : iterable.list().items) {
    STRATA_RETURN_IF_ERROR(Charge(1));
    if (node.c) {
      auto test_scope = std::make_shared<Scope>(loop_scope);
      STRATA_RETURN_IF_ERROR(AssignLoopTarget(*node.a, item, *test_scope));
      STRATA_ASSIGN_OR_RETURN(Value keep, Eval(*node.c, test_scope));
      if (!keep.Truthy()) continue;
    } else if (node.a->kind == NodeKind::kTuple && (!item.is_list() || item.is_tuple())) {
      return absl::InvalidArgumentError(
          absl::StrCat("Cannot unpack non-iterable type: ", item.TypeName()));
    }
    items.push_back(item);
  }
  std::string out;
  bool iterated = false;
  for (size_t i = 0; i < items.size(); ++i) {
    STRATA_RETURN_IF_ERROR(Charge(1));
    loop_scope->Set("loop", LoopInfo(items, i));
    STRATA_RETURN_IF_ERROR(AssignLoopTarget(*node.a, items[i], *loop_scope));
    absl::StatusOr<std::string> body = Block(node.body, loop_scope);
    if (!body.ok()) {
      if (IsControl(body.status(), kContinue)) continue;
      if (IsControl(body.status(), kBreak)) break;
      return body.status();
    }
    out += *body;
    STRATA_RETURN_IF_ERROR(CheckSize(out.size()));
    iterated = true;
  }
  if (!iterated) {
    STRATA_ASSIGN_OR_RETURN(std::string other, Block(node.else_body, loop_scope));
    out += other;
  }
  return Value::String(std::move(out));
}

absl::StatusOr<Value> Evaluator::EvalSet(const Node& node, const ScopePtr& scope) {
  Value rhs;
  if (node.b) {
    STRATA_ASSIGN_OR_RETURN(rhs, Eval(*node.b, scope));
  } else {
    STRATA_ASSIGN_OR_RETURN(std::string body, Block(node.body, scope));
    rhs = Value::String(std::move(body));
  }
  const Node& target = *node.a;
  if (target.kind == NodeKind::kIdentifier) {
    scope->Set(target.text, std::move(rhs));
  } else if (target.kind == NodeKind::kTuple) {
    if (!rhs.is_list()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Cannot unpack non-iterable type in set: ", rhs.TypeName()));
    }
    const auto& values = rhs.list().items;
    if (values.size() != target.items.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Too ", target.items.size() > values.size() ? "few" : "many",
          " items to unpack in set"));
    }
    for (size_t i = 0; i < values.size(); ++i) {
      if (target.items[i]->kind != NodeKind::kIdentifier) {
        return absl::InvalidArgumentError("Cannot unpack to non-identifier in set");
      }
      scope->Set(target.items[i]->text, values[i]);
    }
  } else if (target.kind == NodeKind::kMember) {
    STRATA_ASSIGN_OR_RETURN(Value object, Eval(*target.a, scope));
    if (!object.is_namespace()) {
      return absl::InvalidArgumentError("cannot assign attribute on non-namespace object");
    }
    if (target.b->kind != NodeKind::kIdentifier) {
      return absl::InvalidArgumentError("Cannot assign to member with non-identifier property");
    }
    object.mutable_dict().Set(target.b->text, std::move(rhs));
  } else {
    return absl::InvalidArgumentError("Invalid LHS inside assignment expression");
  }
  return Value::MakeNone();
}

absl::StatusOr<Value> Evaluator::EvalMacro(const Node& node, const ScopePtr& scope) {
  const Node* macro = &node;
  scope->Set(node.text, Value::Function([macro](Evaluator& ev, const ScopePtr& call_scope,
                                                CallArgs args) -> absl::StatusOr<Value> {
    auto macro_scope = std::make_shared<Scope>(call_scope);
    STRATA_RETURN_IF_ERROR(
        ev.BindArguments(absl::StrCat("'", macro->text, "'"), *macro, std::move(args),
                         macro_scope));
    STRATA_ASSIGN_OR_RETURN(std::string out, ev.Block(macro->body, macro_scope));
    return Value::String(std::move(out));
  }));
  return Value::MakeNone();
}

absl::StatusOr<Value> Evaluator::EvalCallBlock(const Node& node, const ScopePtr& scope) {
  const Node* block = &node;
  Value caller = Value::Function([block, scope](Evaluator& ev, const ScopePtr&,
                                                CallArgs args) -> absl::StatusOr<Value> {
    auto env = std::make_shared<Scope>(scope);
    STRATA_RETURN_IF_ERROR(ev.BindArguments("None", *block, std::move(args), env));
    STRATA_ASSIGN_OR_RETURN(std::string out, ev.Block(block->body, env));
    return Value::String(std::move(out));
  });
  STRATA_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(node.a->items, scope));
  STRATA_ASSIGN_OR_RETURN(Value fn, Eval(*node.a->a, scope));
  auto env = std::make_shared<Scope>(scope);
  env->Set("caller", std::move(caller));
  return Call(fn, std::move(args), env);
}

absl::Status Evaluator::BindArguments(std::string_view display_name, const Node& owner,
                                      CallArgs args, const ScopePtr& scope) {
  std::vector<std::pair<std::string, const Node*>> pending;
  const size_t n = owner.items.size();
  for (size_t i = 0; i < n; ++i) {
    const Node& param = *owner.items[i];
    const Node* default_value = param.kind == NodeKind::kKeywordArg ? param.a.get() : nullptr;
    if (i < args.positional.size()) {
      scope->Set(param.text, args.positional[i]);
      continue;
    }
    bool found = false;
    for (auto it = args.keyword.begin(); it != args.keyword.end(); ++it) {
      if (it->first == param.text) {
        scope->Set(param.text, std::move(it->second));
        args.keyword.erase(it);
        found = true;
        break;
      }
    }
    if (found) continue;
    if (default_value != nullptr) pending.emplace_back(param.text, default_value);
    scope->Set(param.text, Value());
  }
  if (BodyMentions(owner, "kwargs")) {
    auto data = std::make_shared<DictData>();
    for (auto& [key, value] : args.keyword) data->Set(key, std::move(value));
    scope->Set("kwargs", Value::MakeDict(std::move(data)));
  } else if (!args.keyword.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "macro ", absl::string_view(display_name.data(), display_name.size()),
        " takes no keyword argument '", args.keyword.front().first, "'"));
  }
  if (BodyMentions(owner, "varargs")) {
    std::vector<Value> rest;
    for (size_t i = n; i < args.positional.size(); ++i) rest.push_back(args.positional[i]);
    scope->Set("varargs", Value::List(std::move(rest)));
  } else if (args.positional.size() > n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "macro ", absl::string_view(display_name.data(), display_name.size()),
        " takes not more than ", n, " argument(s)"));
  }
  for (const auto& [name, expr] : pending) {
    STRATA_ASSIGN_OR_RETURN(Value v, Eval(*expr, scope));
    scope->Set(name, std::move(v));
  }
  return absl::OkStatus();
}

}  // namespace strata::chat

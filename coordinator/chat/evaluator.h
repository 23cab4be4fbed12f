// Evaluation of a parsed template, reproducing @huggingface/jinja's Interpreter:
//
//  * Scopes chain to their parent. A for loop runs its body in one child scope (so `set` in a
//    loop does not leak out, and persists across iterations); `if` opens no scope; a macro runs
//    in a child of the scope it is *called* from (jinja-js scopes macros dynamically).
//  * `break` / `continue` travel as a private Status up to the loop, discarding the output of
//    the interrupted iteration, as jinja-js's exceptions do.
//  * Every evaluation step, loop iteration and macro call is counted against RenderLimits, so a
//    hostile template (infinite recursion, huge loops, exponential string growth) fails with
//    ResourceExhausted instead of exhausting the coordinator's stack, memory or time.
//
// The first error records the line of the innermost node that failed; Template adds the
// template name. Not thread-safe; one Evaluator renders once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "coordinator/chat/ast.h"
#include "coordinator/chat/value.h"

namespace strata::chat {

// Bounds on one render.
struct RenderLimits {
  int64_t max_steps = 20'000'000;          // expression evaluations + loop iterations
  int64_t max_output_bytes = 64 << 20;     // any string built, and the output
  int max_call_depth = 64;                 // nested macro calls
  int max_eval_depth = 1000;               // nested evaluations (C++ stack)
};

// A calendar time for strftime_now (local time by default; injectable for tests).
struct BrokenDownTime {
  int year = 1970;
  int month = 1;  // 1-12
  int day = 1;
  int hour = 0;
  int minute = 0;
};
using Clock = std::function<BrokenDownTime()>;

// A variable scope. Lookups fall back to the parent; missing names are undefined.
class Scope {
 public:
  explicit Scope(std::shared_ptr<Scope> parent = nullptr) : parent_(std::move(parent)) {}
  Value Lookup(std::string_view name) const;
  void Set(std::string name, Value value) { vars_[std::move(name)] = std::move(value); }
  bool HasLocal(std::string_view name) const;

 private:
  std::shared_ptr<Scope> parent_;
  absl::flat_hash_map<std::string, Value> vars_;
};
using ScopePtr = std::shared_ptr<Scope>;

// Renders a template body; see the file comment.
class Evaluator {
 public:
  explicit Evaluator(RenderLimits limits) : limits_(limits) {}

  // Renders `body` in `global`. On error, error_line() is the failing node's line (0 if none).
  absl::StatusOr<std::string> Run(const NodeList& body, const ScopePtr& global);
  int error_line() const { return error_line_; }

  // Evaluates one node (statement or expression).
  absl::StatusOr<Value> Eval(const Node& node, const ScopePtr& scope);
  // Evaluates statements in order and concatenates what they print.
  absl::StatusOr<std::string> Block(const NodeList& body, const ScopePtr& scope);
  // Calls a function value with evaluated arguments.
  absl::StatusOr<Value> Call(const Value& fn, CallArgs args, const ScopePtr& scope);
  // Evaluates call arguments: positional (with *spread) first, then keyword (with **spread).
  absl::StatusOr<CallArgs> EvalArgs(const NodeList& args, const ScopePtr& scope);

  // Binds the parameters of a macro or call block (`owner.items`) to `args` in `scope`, with
  // jinja-js's rules: positional, then by keyword, then defaults (evaluated in `scope`);
  // leftovers go to `varargs` / `kwargs` when the body reads them, else are an error.
  absl::Status BindArguments(std::string_view display_name, const Node& owner, CallArgs args,
                             const ScopePtr& scope);

  // Charges `n` steps; ResourceExhausted past max_steps.
  absl::Status Charge(int64_t n);
  // ResourceExhausted when a string of `size` bytes exceeds max_output_bytes.
  absl::Status CheckSize(size_t size) const;
  const RenderLimits& limits() const { return limits_; }

 private:
  absl::StatusOr<Value> EvalNode(const Node& node, const ScopePtr& scope);
  absl::StatusOr<Value> EvalFor(const Node& node, const ScopePtr& scope);
  absl::StatusOr<Value> EvalSet(const Node& node, const ScopePtr& scope);
  absl::StatusOr<Value> EvalMacro(const Node& node, const ScopePtr& scope);
  absl::StatusOr<Value> EvalCallBlock(const Node& node, const ScopePtr& scope);
  absl::StatusOr<Value> EvalMember(const Node& node, const ScopePtr& scope);
  absl::StatusOr<Value> EvalSlice(const Value& object, const Node& slice, const ScopePtr& scope);
  absl::StatusOr<Value> EvalCall(const Node& node, const ScopePtr& scope);
  absl::StatusOr<Value> EvalLiteral(const Node& node, const ScopePtr& scope);
  absl::StatusOr<Value> EvalUnary(const Node& node, const ScopePtr& scope);
  absl::StatusOr<Value> EvalBinary(const Node& node, const ScopePtr& scope);
  absl::StatusOr<Value> EvalTest(const Node& node, const ScopePtr& scope);

  RenderLimits limits_;
  int64_t steps_ = 0;
  int eval_depth_ = 0;
  int call_depth_ = 0;
  int error_line_ = 0;
};

// True for the private statuses that carry `break` / `continue`.
bool IsLoopControl(const absl::Status& status);

}  // namespace strata::chat

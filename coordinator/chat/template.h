// A compiled Jinja template that renders as @huggingface/jinja 0.5.11 (the interpreter
// transformers.js uses for chat templates) renders it, byte for byte, within the subset
// described in coordinator/chat/README.md.
//
//   STRATA_ASSIGN_OR_RETURN(Template t, Template::Parse(text, "Qwen3-8B"));
//   STRATA_ASSIGN_OR_RETURN(std::string prompt, t.Render(variables));
//
// Errors never crash or throw: parse and render errors are InvalidArgument (ResourceExhausted
// when a RenderLimits bound is hit) with a message "template '<name>' line <n>: <what>".
// A template's own raise_exception("msg") gives "template '<name>' line <n>:
// raise_exception: msg". A Template is immutable after Parse; Render may run concurrently.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/chat/ast.h"
#include "coordinator/chat/evaluator.h"
#include "coordinator/chat/value.h"

namespace strata::chat {

// Options of one render.
struct RenderOptions {
  RenderLimits limits;
  Clock clock;  // for strftime_now; empty: the local time
};

// A parsed template.
class Template {
 public:
  // Largest template text accepted (chat templates are a few KiB).
  static constexpr size_t kMaxTemplateBytes = 1 << 20;

  // Tokenizes and parses `text`; `name` (e.g. the model) appears in every error message.
  static absl::StatusOr<Template> Parse(std::string_view text, std::string name);

  // Renders with `variables` defined in the global scope next to the built-ins (true, false,
  // none, namespace, range, raise_exception, strftime_now). Redefining a built-in is an
  // error, as in jinja-js.
  absl::StatusOr<std::string> Render(const std::vector<std::pair<std::string, Value>>& variables,
                                     const RenderOptions& options = {}) const;

  const std::string& name() const { return name_; }

 private:
  Template(std::string name, std::shared_ptr<const NodeList> body)
      : name_(std::move(name)), body_(std::move(body)) {}

  std::string name_;
  std::shared_ptr<const NodeList> body_;
};

}  // namespace strata::chat

#include "coordinator/chat/template.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "coordinator/chat/builtins.h"
#include "coordinator/chat/lexer.h"
#include "coordinator/chat/parser.h"

namespace strata::chat {
namespace {

// "line N: what" from the lexer/parser -> "template 'name' line N: what".
absl::Status Named(const absl::Status& s, const std::string& name) {
  return absl::Status(s.code(), absl::StrCat("template '", name, "' ", s.message()));
}

}  // namespace

absl::StatusOr<Template> Template::Parse(std::string_view text, std::string name) {
  if (text.size() > kMaxTemplateBytes) {
    return absl::InvalidArgumentError(absl::StrCat("template '", name, "' is ", text.size(),
                                                   " bytes, more than the limit of ",
                                                   kMaxTemplateBytes));
  }
  absl::StatusOr<std::vector<Token>> tokens = Tokenize(text);
  if (!tokens.ok()) return Named(tokens.status(), name);
  absl::StatusOr<NodeList> body = chat::Parse(*tokens);
  if (!body.ok()) return Named(body.status(), name);
  return Template(std::move(name), std::make_shared<const NodeList>(std::move(*body)));
}

absl::StatusOr<std::string> Template::Render(
    const std::vector<std::pair<std::string, Value>>& variables,
    const RenderOptions& options) const {
  auto global = std::make_shared<Scope>();
  InstallGlobals(*global, options.clock);
  for (const auto& [key, value] : variables) {
    if (global->HasLocal(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("template '", name_, "': Variable already declared: ", key));
    }
    global->Set(key, value);
  }
  Evaluator evaluator(options.limits);
  absl::StatusOr<std::string> out = evaluator.Run(*body_, global);
  if (out.ok()) return out;
  const std::string where = evaluator.error_line() > 0
                                ? absl::StrCat(" line ", evaluator.error_line())
                                : std::string();
  return absl::Status(out.status().code(), absl::StrCat("template '", name_, "'", where, ": ",
                                                        out.status().message()));
}

}  // namespace strata::chat

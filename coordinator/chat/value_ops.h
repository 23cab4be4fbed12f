// Conversions and comparisons of Values, each the counterpart of one jinja-js operation:
// rendering `{{ x }}` (RuntimeValue.toString), JavaScript string coercion (`+`, `~`),
// `==` (JavaScript loose equality on the raw values), `in` (strict equality), sorting
// (compareRuntimeValues) and `tojson`.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "coordinator/chat/value.h"

namespace strata::chat {

// What `{{ x }}` prints: floats keep ".0", booleans print true/false, lists and dicts print as
// JSON with undefined members written `undefined`. Fails for tuples (jinja-js cannot print them).
absl::StatusOr<std::string> Display(const Value& v);

// JavaScript String(v.value): what `+` and `~` concatenate (1.0 -> "1", a list -> its items'
// Display joined by ",", a dict -> "[object Map]").
std::string JsString(const Value& v);

// One item of the `join` filter: JsString, but none and undefined are empty.
std::string JoinPiece(const Value& v);

// `==`: JavaScript `a.value == b.value` (none == undefined, 1 == true, "1" == 1; containers by
// identity).
bool LooseEquals(const Value& a, const Value& b);

// `in` on lists, `equalto`, `unique`: JavaScript `===` on the raw values (1 === 1.0).
bool StrictEquals(const Value& a, const Value& b);

// compareRuntimeValues: numbers (and booleans) numerically, strings (case-insensitively unless
// case_sensitive), none with none, undefined with undefined; anything else is an error.
absl::StatusOr<int> CompareValues(const Value& a, const Value& b, bool case_sensitive);

// Options of the `tojson` filter, as jinja-js reads them.
struct JsonOptions {
  int64_t indent = 0;  // 0: single line
  bool ensure_ascii = false;
  bool sort_keys = false;
  // Item and key separators; default ", " / ": " (or "," / ": " when indenting).
  std::optional<std::pair<std::string, std::string>> separators;
  // Write undefined as null (tojson) or as `undefined` (printing a list).
  bool undefined_as_null = true;
};

// JSON text of `v`. Fails for functions, tuples and keyword-argument bundles, as jinja-js does.
absl::StatusOr<std::string> ToJson(const Value& v, const JsonOptions& options);

}  // namespace strata::chat

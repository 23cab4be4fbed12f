// The values a chat template computes with, modelled on @huggingface/jinja's runtime values
// (the interpreter transformers.js uses), whose behaviour this interpreter reproduces.
//
// Scalars (undefined, none, bool, int, float, string) are held by value. Lists, dicts,
// namespaces and callables are held by shared pointer: like JavaScript objects they have
// identity (`==` on two lists compares identity, as jinja-js does) and a namespace mutated
// through one name is seen through every other. Strings are UTF-8; where JavaScript counts
// UTF-16 code units (length, indexing) the helpers in js_text.h convert.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace strata::chat {

class Value;
class Evaluator;
class Scope;

// A list (or, with is_tuple, a tuple literal: jinja-js refuses tuples in tojson, `is iterable`
// and for-loop unpacking, and so does this interpreter).
struct ListData {
  std::vector<Value> items;
  bool is_tuple = false;
};

// An insertion-ordered string-keyed map: dicts, namespaces and keyword-argument bundles. Small
// ones (most: message objects, `loop`, keyword arguments) are scanned; a hash index is built
// once a dict outgrows kScannedSize.
class DictData {
 public:
  // The value under `key`, or nullptr.
  const Value* Find(std::string_view key) const;
  Value* Find(std::string_view key);
  // Inserts or overwrites, keeping the first insertion's position.
  void Set(std::string key, Value value);
  void Reserve(size_t n);
  const std::vector<std::pair<std::string, Value>>& entries() const { return entries_; }
  size_t size() const;  // defined below Value, which must be complete first

 private:
  static constexpr size_t kScannedSize = 16;

  std::vector<std::pair<std::string, Value>> entries_;
  absl::flat_hash_map<std::string, size_t> index_;  // empty until size() > kScannedSize
};

// Arguments of one call: positional values, then keyword arguments in source order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // The keyword argument `name`, or nullptr.
  const Value* Keyword(std::string_view name) const;
};

// A callable: a macro, a built-in global (range, namespace, raise_exception, strftime_now) or
// a method bound to its receiver (" x ".strip). `scope` is the caller's scope: macros run in
// a child of the scope they are called from, as in jinja-js.
using NativeFunction = std::function<absl::StatusOr<Value>(
    Evaluator& evaluator, const std::shared_ptr<Scope>& scope, CallArgs args)>;

// One template value. Cheap to copy for containers (shared), by value for scalars.
class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace,
                    kFunction };

  struct Undefined {};
  struct None {};
  // A dict whose `is_kwargs` marks jinja-js's KeywordArgumentsValue (a mapping that tojson
  // refuses).
  struct Dict {
    std::shared_ptr<DictData> data;
    bool is_kwargs = false;
  };
  struct Namespace {
    std::shared_ptr<DictData> data;
  };

  Value() : rep_(Undefined{}) {}
  static Value MakeNone() { return Value(Rep(None{})); }
  static Value Bool(bool b) { return Value(Rep(b)); }
  static Value Int(int64_t i) { return Value(Rep(i)); }
  static Value Float(double f) { return Value(Rep(f)); }
  static Value String(std::string s) { return Value(Rep(std::move(s))); }
  static Value List(std::vector<Value> items, bool is_tuple = false);
  static Value MakeDict(std::shared_ptr<DictData> data = nullptr, bool is_kwargs = false);
  static Value MakeNamespace(std::shared_ptr<DictData> data = nullptr);
  static Value Function(NativeFunction fn);

  Kind kind() const { return static_cast<Kind>(rep_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_number() const { return is_int() || is_float(); }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_tuple() const { return is_list() && list().is_tuple; }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_kwargs() const { return is_dict() && std::get<Dict>(rep_).is_kwargs; }
  bool is_namespace() const { return kind() == Kind::kNamespace; }
  bool is_function() const { return kind() == Kind::kFunction; }

  // Accessors; calling the wrong one is a programmer error (std::get throws -> abort).
  bool as_bool() const { return std::get<bool>(rep_); }
  int64_t as_int() const { return std::get<int64_t>(rep_); }
  double as_float() const { return std::get<double>(rep_); }
  // int or float as double.
  double as_number() const { return is_int() ? static_cast<double>(as_int()) : as_float(); }
  const std::string& str() const { return std::get<std::string>(rep_); }
  const ListData& list() const { return *std::get<std::shared_ptr<ListData>>(rep_); }
  // The entries of a dict or namespace.
  const DictData& dict() const;
  DictData& mutable_dict() const;
  const NativeFunction& function() const { return *std::get<std::shared_ptr<NativeFunction>>(rep_); }

  // jinja-js's type name ("StringValue", "TupleValue", ...), used in error messages.
  std::string TypeName() const;

  // Truthiness (`if x`): empty string/list/dict, 0, none and undefined are false; namespaces
  // and functions are true.
  bool Truthy() const;

  // True when both are the same container object (identity), for containers only.
  bool SameObject(const Value& other) const;

 private:
  using Rep = std::variant<Undefined, None, bool, int64_t, double, std::string,
                           std::shared_ptr<ListData>, Dict, Namespace,
                           std::shared_ptr<NativeFunction>>;
  explicit Value(Rep rep) : rep_(std::move(rep)) {}
  Rep rep_;
};

inline size_t DictData::size() const { return entries_.size(); }
inline void DictData::Reserve(size_t n) { entries_.reserve(n); }

}  // namespace strata::chat

#include "coordinator/chat/value.h"

#include <utility>

namespace strata::chat {

const Value* DictData::Find(std::string_view key) const {
  if (index_.empty()) {
    for (const auto& [name, value] : entries_) {
      if (name == key) return &value;
    }
    return nullptr;
  }
  auto it = index_.find(absl::string_view(key.data(), key.size()));
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

Value* DictData::Find(std::string_view key) {
  return const_cast<Value*>(std::as_const(*this).Find(key));
}

void DictData::Set(std::string key, Value value) {
  if (Value* existing = Find(key)) {
    *existing = std::move(value);
    return;
  }
  entries_.emplace_back(std::move(key), std::move(value));
  if (entries_.size() <= kScannedSize) return;
  if (index_.empty()) {
    for (size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].first, i);
  } else {
    index_.emplace(entries_.back().first, entries_.size() - 1);
  }
}

const Value* CallArgs::Keyword(std::string_view name) const {
  for (const auto& [key, value] : keyword) {
    if (key == name) return &value;
  }
  return nullptr;
}

Value Value::List(std::vector<Value> items, bool is_tuple) {
  auto data = std::make_shared<ListData>();
  data->items = std::move(items);
  data->is_tuple = is_tuple;
  return Value(Rep(std::move(data)));
}

Value Value::MakeDict(std::shared_ptr<DictData> data, bool is_kwargs) {
  if (data == nullptr) data = std::make_shared<DictData>();
  return Value(Rep(Dict{std::move(data), is_kwargs}));
}

Value Value::MakeNamespace(std::shared_ptr<DictData> data) {
  if (data == nullptr) data = std::make_shared<DictData>();
  return Value(Rep(Namespace{std::move(data)}));
}

Value Value::Function(NativeFunction fn) {
  return Value(Rep(std::make_shared<NativeFunction>(std::move(fn))));
}

const DictData& Value::dict() const { return mutable_dict(); }

DictData& Value::mutable_dict() const {
  if (is_namespace()) return *std::get<Namespace>(rep_).data;
  return *std::get<Dict>(rep_).data;
}

std::string Value::TypeName() const {
  switch (kind()) {
    case Kind::kUndefined: return "UndefinedValue";
    case Kind::kNone: return "NullValue";
    case Kind::kBool: return "BooleanValue";
    case Kind::kInt: return "IntegerValue";
    case Kind::kFloat: return "FloatValue";
    case Kind::kString: return "StringValue";
    case Kind::kList: return is_tuple() ? "TupleValue" : "ArrayValue";
    case Kind::kDict: return is_kwargs() ? "KeywordArgumentsValue" : "ObjectValue";
    case Kind::kNamespace: return "NamespaceValue";
    case Kind::kFunction: return "FunctionValue";
  }
  return "UnknownValue";
}

bool Value::Truthy() const {
  switch (kind()) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return as_bool();
    case Kind::kInt: return as_int() != 0;
    case Kind::kFloat: return as_float() != 0 && as_float() == as_float();  // NaN is false
    case Kind::kString: return !str().empty();
    case Kind::kList: return !list().items.empty();
    case Kind::kDict: return dict().size() > 0;
    case Kind::kNamespace:
    case Kind::kFunction: return true;
  }
  return false;
}

bool Value::SameObject(const Value& other) const {
  if (kind() != other.kind()) return false;
  switch (kind()) {
    case Kind::kList:
      return std::get<std::shared_ptr<ListData>>(rep_) ==
             std::get<std::shared_ptr<ListData>>(other.rep_);
    case Kind::kDict:
    case Kind::kNamespace: return &dict() == &other.dict();
    case Kind::kFunction:
      return std::get<std::shared_ptr<NativeFunction>>(rep_) ==
             std::get<std::shared_ptr<NativeFunction>>(other.rep_);
    default: return false;
  }
}

}  // namespace strata::chat

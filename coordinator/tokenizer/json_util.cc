#include "coordinator/tokenizer/json_util.h"


#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/status.h"

namespace strata::tokenizer {

absl::StatusOr<std::optional<boost::json::object>> ReadJsonObject(
    const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  STRATA_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path.string()));
  return ParseJsonObject(path.string(), "file", text);
}

std::optional<std::string_view> JsonString(const boost::json::value* value) {
  if (value == nullptr || !value->is_string()) return std::nullopt;
  const boost::json::string& s = value->as_string();
  return std::string_view(s.data(), s.size());
}

std::optional<std::string_view> JsonString(const boost::json::object& obj, std::string_view key) {
  return JsonString(obj.if_contains(boost::json::string_view(key.data(), key.size())));
}

bool JsonBool(const boost::json::object& obj, std::string_view key, bool absent) {
  const boost::json::value* v = obj.if_contains(boost::json::string_view(key.data(), key.size()));
  return v != nullptr && v->is_bool() ? v->as_bool() : absent;
}

std::optional<std::string_view> JsonTokenContent(const boost::json::object& obj,
                                                 std::string_view key) {
  const boost::json::value* v = obj.if_contains(boost::json::string_view(key.data(), key.size()));
  if (v != nullptr && v->is_object()) v = v->as_object().if_contains("content");
  return JsonString(v);
}

absl::Status ForEachComponent(
    const boost::json::value& json, const std::string& where, std::string_view list_key,
    absl::FunctionRef<absl::Status(const boost::json::object& obj, const std::string& type,
                                   const std::string& where)>
        parse) {
  if (json.is_null()) return absl::OkStatus();
  if (!json.is_object()) return absl::InvalidArgumentError(where + " is not an object");
  const boost::json::object& obj = json.as_object();
  const std::string type(JsonString(obj, "type").value_or(""));
  if (type != "Sequence") return parse(obj, type, where);
  const boost::json::value* list =
      obj.if_contains(boost::json::string_view(list_key.data(), list_key.size()));
  if (list == nullptr || !list->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " Sequence has no '", std::string(list_key), "' list"));
  }
  for (const boost::json::value& item : list->as_array()) {
    STRATA_RETURN_IF_ERROR(ForEachComponent(item, where, list_key, parse));
  }
  return absl::OkStatus();
}

}  // namespace strata::tokenizer

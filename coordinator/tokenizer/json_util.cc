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

}  // namespace strata::tokenizer

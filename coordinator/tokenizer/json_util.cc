#include "coordinator/tokenizer/json_util.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace strata::tokenizer {

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open"));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path.string(), ": read failed"));
  return std::move(buffer).str();
}

absl::StatusOr<std::optional<boost::json::object>> ReadJsonObject(
    const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  STRATA_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(text, ec);
  if (ec || !value.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": not a JSON object", ec ? ": " + ec.message() : ""));
  }
  return std::move(value.as_object());
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

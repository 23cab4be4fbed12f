#include "common/json.h"

#include <fstream>
#include <sstream>

#include <limits>

#include "absl/strings/str_cat.h"

namespace strata {

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  return std::move(buffer).str();
}


absl::StatusOr<boost::json::object> ParseJsonObject(const std::string& path, absl::string_view what,
                                                    std::string_view text) {
  boost::json::error_code ec;
  boost::json::value value =
      boost::json::parse(boost::json::string_view(text.data(), text.size()), ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", what, " is not valid JSON: ", ec.message()));
  }
  boost::json::object* object = value.if_object();
  if (object == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", what, " is not a JSON object"));
  }
  return std::move(*object);
}

std::optional<int64_t> AsNonNegativeInt(const boost::json::value& v) {
  if (const int64_t* i = v.if_int64()) {
    if (*i >= 0) return *i;
  } else if (const uint64_t* u = v.if_uint64()) {
    if (*u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return static_cast<int64_t>(*u);
    }
  }
  return std::nullopt;
}

}  // namespace strata

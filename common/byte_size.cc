#include "common/byte_size.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace strata {

absl::StatusOr<int64_t> ParseByteSize(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  const std::string number(text.substr(0, i));
  std::string unit(text.substr(i));
  unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
  for (char& ch : unit) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  char* end = nullptr;
  const double value = number.empty() ? -1 : std::strtod(number.c_str(), &end);
  struct Unit {
    const char* name;
    double scale;
  };
  static constexpr Unit kUnits[] = {{"", 1},        {"b", 1},       {"kib", 1024.0},
                                    {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1099511627776.0},
                                    {"kb", 1e3},     {"mb", 1e6},    {"gb", 1e9},
                                    {"tb", 1e12},    {"k", 1024.0},  {"m", 1 << 20},
                                    {"g", 1 << 30},  {"t", 1099511627776.0}};
  for (const Unit& u : kUnits) {
    if (unit == u.name && value > 0 && end != nullptr && *end == '\0') {
      return static_cast<int64_t>(value * u.scale);
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("cannot read '", std::string(text),
                                                 "' as a size (e.g. 80GiB, 80GB, 512MiB)"));
}

std::string FormatBytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1099511627776.0) return absl::StrFormat("%.2f TiB", b / 1099511627776.0);
  if (b >= 1 << 30) return absl::StrFormat("%.1f GiB", b / (1 << 30));
  if (b >= 1 << 20) return absl::StrFormat("%.1f MiB", b / (1 << 20));
  return absl::StrFormat("%d B", bytes);
}

}  // namespace strata

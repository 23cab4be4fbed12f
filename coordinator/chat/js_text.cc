#include "coordinator/chat/js_text.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace strata::chat {
namespace {

constexpr uint32_t kReplacement = 0xFFFD;

bool IsAsciiWord(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// The longest prefix of `s` that is a StrDecimalLiteral (sign, digits, fraction, exponent),
// or "Infinity" with a sign.
size_t DecimalPrefix(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  if (s.substr(i, 8) == "Infinity") return i + 8;
  size_t digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    size_t j = i + 1;
    size_t frac = 0;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j, ++frac;
    if (digits + frac > 0) i = j, digits += frac;
  }
  if (digits == 0) return 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    size_t j = i + 1;
    if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
    size_t exp_digits = 0;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j, ++exp_digits;
    if (exp_digits > 0) i = j;
  }
  return i;
}

double ParseDecimal(std::string_view s) {
  std::string text(s);
  if (text.find("Infinity") != std::string::npos) {
    return text[0] == '-' ? -INFINITY : INFINITY;
  }
  return std::strtod(text.c_str(), nullptr);
}

}  // namespace

void AppendCodePoint(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t NextCodePoint(std::string_view s, size_t* pos) {
  const auto b0 = static_cast<unsigned char>(s[*pos]);
  int len = 0;
  uint32_t cp = 0;
  if (b0 < 0x80) {
    ++*pos;
    return b0;
  } else if ((b0 & 0xE0) == 0xC0 && b0 >= 0xC2) {
    len = 2, cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0 && b0 <= 0xF4) {
    len = 4, cp = b0 & 0x07;
  } else {
    ++*pos;
    return kReplacement;
  }
  if (*pos + len > s.size()) {
    ++*pos;
    return kReplacement;
  }
  for (int i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[*pos + i]);
    if ((b & 0xC0) != 0x80) {
      ++*pos;
      return kReplacement;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
    ++*pos;
    return kReplacement;
  }
  *pos += len;
  return cp;
}

std::u16string Utf8ToUtf16(std::string_view s) {
  std::u16string out;
  out.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) {
    const uint32_t cp = NextCodePoint(s, &pos);
    if (cp >= 0x10000) {
      out.push_back(static_cast<char16_t>(0xD800 + ((cp - 0x10000) >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + ((cp - 0x10000) & 0x3FF)));
    } else {
      out.push_back(static_cast<char16_t>(cp));
    }
  }
  return out;
}

std::string Utf16ToUtf8(std::u16string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    uint32_t cp = s[i];
    if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < s.size() && s[i + 1] >= 0xDC00 &&
        s[i + 1] < 0xE000) {
      cp = 0x10000 + ((cp - 0xD800) << 10) + (s[i + 1] - 0xDC00);
      ++i;
    }
    AppendCodePoint(cp, &out);
  }
  return out;
}

int64_t Utf16Length(std::string_view s) {
  int64_t n = 0;
  for (size_t pos = 0; pos < s.size();) n += NextCodePoint(s, &pos) >= 0x10000 ? 2 : 1;
  return n;
}

bool IsJsSpace(uint32_t cp) {
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
    case 0xFEFF:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

size_t JsSpaceAt(std::string_view s, size_t pos) {
  if (pos >= s.size()) return 0;
  size_t next = pos;
  return IsJsSpace(NextCodePoint(s, &next)) ? next - pos : 0;
}

std::string JsTrim(std::string_view s, bool start, bool end) {
  size_t begin = 0;
  if (start) {
    while (size_t n = JsSpaceAt(s, begin)) begin += n;
  }
  size_t stop = s.size();
  if (end) {
    // Walk forward remembering where the trailing run of spaces starts.
    size_t run = s.size();
    for (size_t pos = begin; pos < s.size();) {
      const size_t at = pos;
      const bool space = IsJsSpace(NextCodePoint(s, &pos));
      if (!space) run = s.size();
      else if (run == s.size()) run = at;
    }
    stop = run;
  }
  return std::string(s.substr(begin, stop - begin));
}

std::string AsciiUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string JsTitle(std::string_view s) {
  std::string out(s);
  for (size_t i = 0; i < out.size(); ++i) {
    const bool boundary = i == 0 || !IsAsciiWord(out[i - 1]);
    if (boundary && out[i] >= 'a' && out[i] <= 'z') out[i] = static_cast<char>(out[i] - 32);
  }
  return out;
}

std::string JsNumberToString(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  if (d == 0) return "0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string sign;
  if (sci[0] == '-') sign = "-", sci.erase(0, 1);
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  if (digits.size() > 1) digits.erase(1, 1);  // drop the '.'
  const int exp = std::atoi(sci.c_str() + e + 1);
  const int k = static_cast<int>(digits.size());
  const int n = exp + 1;
  std::string out;
  if (k <= n && n <= 21) {
    out = digits + std::string(n - k, '0');
  } else if (0 < n && n <= 21) {
    out = digits.substr(0, n) + "." + digits.substr(n);
  } else if (-6 < n && n <= 0) {
    out = "0." + std::string(-n, '0') + digits;
  } else {
    out = digits.substr(0, 1);
    if (k > 1) out += "." + digits.substr(1);
    out += (n - 1 >= 0 ? "e+" : "e-") + std::to_string(std::abs(n - 1));
  }
  return sign + out;
}

std::string JsonQuote(std::string_view s, bool ensure_ascii) {
  const std::u16string units = Utf8ToUtf16(s);
  std::string out = "\"";
  char buf[8];
  for (size_t i = 0; i < units.size(); ++i) {
    const char16_t c = units[i];
    switch (c) {
      case u'"': out += "\\\""; continue;
      case u'\\': out += "\\\\"; continue;
      case u'\b': out += "\\b"; continue;
      case u'\f': out += "\\f"; continue;
      case u'\n': out += "\\n"; continue;
      case u'\r': out += "\\r"; continue;
      case u'\t': out += "\\t"; continue;
      default: break;
    }
    const bool high = c >= 0xD800 && c < 0xDC00;
    const bool low = c >= 0xDC00 && c < 0xE000;
    const bool paired = high && i + 1 < units.size() && units[i + 1] >= 0xDC00 &&
                        units[i + 1] < 0xE000;
    const bool lone = (high && !paired) || (low && (i == 0 || !(units[i - 1] >= 0xD800 &&
                                                                 units[i - 1] < 0xDC00)));
    if (c < 0x20 || lone || (ensure_ascii && c >= 0x7F)) {
      std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else if (paired) {
      out += Utf16ToUtf8(std::u16string_view(&units[i], 2));
      ++i;
    } else {
      AppendCodePoint(c, &out);
    }
  }
  return out + "\"";
}

bool JsParseInt(std::string_view s, int64_t* out) {
  size_t i = 0;
  while (size_t n = JsSpaceAt(s, i)) i += n;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  const size_t start = i;
  double value = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') value = value * 10 + (s[i++] - '0');
  if (i == start || value > 9.2e18) return false;
  *out = static_cast<int64_t>(negative ? -value : value);
  return true;
}

bool JsParseFloat(std::string_view s, double* out) {
  size_t i = 0;
  while (size_t n = JsSpaceAt(s, i)) i += n;
  const size_t len = DecimalPrefix(s.substr(i));
  if (len == 0) return false;
  *out = ParseDecimal(s.substr(i, len));
  return true;
}

bool JsStringToNumber(std::string_view s, double* out) {
  const std::string t = JsTrim(s, true, true);
  if (t.empty()) {
    *out = 0;
    return true;
  }
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
    double v = 0;
    for (size_t i = 2; i < t.size(); ++i) {
      const char c = t[i];
      int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (d < 0) return false;
      v = v * 16 + d;
    }
    *out = v;
    return true;
  }
  if (DecimalPrefix(t) != t.size()) return false;
  *out = ParseDecimal(t);
  return true;
}

}  // namespace strata::chat

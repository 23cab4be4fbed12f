#include "coordinator/tokenizer/utf8.h"

#include <cstdint>

namespace strata::tokenizer {
namespace {

// Length of the maximal prefix of `s` that could start a well-formed character (>= 1), used to
// write one U+FFFD per maximal ill-formed subsequence.
size_t IllFormedLength(std::string_view s) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 1;
  }
  size_t i = 1;
  for (; i <= need && i < s.size(); ++i) {
    if (b(i) < lo || b(i) > hi) break;
    lo = 0x80;
    hi = 0xBF;
  }
  return i;
}

}  // namespace

size_t ValidCharLength(std::string_view s) {
  if (s.empty()) return 0;
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const auto cont = [&](size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
  const uint8_t c = b(0);
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;  // continuation byte or overlong 2-byte lead
  if (c < 0xE0) return cont(1) ? 2 : 0;
  if (c < 0xF0) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // surrogates
    return 3;
  }
  if (c < 0xF5) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

void AppendSanitized(std::string_view bytes, std::string* out) {
  while (!bytes.empty()) {
    const size_t n = ValidCharLength(bytes);
    if (n == 0) {
      out->append(kReplacementChar);
      bytes.remove_prefix(1);
    } else {
      out->append(bytes.substr(0, n));
      bytes.remove_prefix(n);
    }
  }
}

void AppendUtf8Lossy(std::string_view bytes, std::string* out) {
  while (!bytes.empty()) {
    const size_t n = ValidCharLength(bytes);
    if (n > 0) {
      out->append(bytes.substr(0, n));
      bytes.remove_prefix(n);
    } else {
      out->append(kReplacementChar);
      bytes.remove_prefix(IllFormedLength(bytes));
    }
  }
}

bool IsValidUtf8(std::string_view s) {
  while (!s.empty()) {
    const size_t n = ValidCharLength(s);
    if (n == 0) return false;
    s.remove_prefix(n);
  }
  return true;
}

}  // namespace strata::tokenizer

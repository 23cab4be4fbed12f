#include "coordinator/tokenizer/byte_level.h"

#include <array>
#include <cstdint>

#include "coordinator/tokenizer/utf8.h"

namespace strata::tokenizer {
namespace {

// byte -> code point of its byte-level character, as GPT-2's bytes_to_unicode().
const std::array<uint16_t, 256>& ByteToCodePoint() {
  static const std::array<uint16_t, 256> table = [] {
    std::array<uint16_t, 256> t{};
    uint16_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      t[b] = printable ? static_cast<uint16_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

// Code point (< 0x144) -> byte, or -1.
const std::array<int16_t, 0x144>& CodePointToByte() {
  static const std::array<int16_t, 0x144> table = [] {
    std::array<int16_t, 0x144> t;
    t.fill(-1);
    for (int b = 0; b < 256; ++b) t[ByteToCodePoint()[b]] = static_cast<int16_t>(b);
    return t;
  }();
  return table;
}

}  // namespace

std::string BytesToByteLevel(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    const uint16_t cp = ByteToCodePoint()[b];
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  return out;
}

std::optional<std::string> ByteLevelToBytes(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  while (!token.empty()) {
    const size_t len = ValidCharLength(token);
    uint32_t cp;
    if (len == 1) {
      cp = static_cast<unsigned char>(token[0]);
    } else if (len == 2) {
      cp = ((static_cast<unsigned char>(token[0]) & 0x1F) << 6) |
           (static_cast<unsigned char>(token[1]) & 0x3F);
    } else {
      return std::nullopt;  // 3/4-byte characters and invalid bytes are outside the alphabet
    }
    if (cp >= CodePointToByte().size() || CodePointToByte()[cp] < 0) return std::nullopt;
    out.push_back(static_cast<char>(CodePointToByte()[cp]));
    token.remove_prefix(len);
  }
  return out;
}

}  // namespace strata::tokenizer

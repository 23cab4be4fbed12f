// Small UTF-8 helpers shared by the tokenizers.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace strata::tokenizer {

// U+FFFD, written for bytes that do not form a valid character.
inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

// Length (1..4) of the well-formed UTF-8 character at the start of `s` (no overlongs,
// surrogates or code points above U+10FFFF), or 0 when `s` is empty or does not start with one.
size_t ValidCharLength(std::string_view s);

// Appends `bytes` to `out`, replacing each byte that is not part of a valid character with
// U+FFFD (as SentencePiece does for byte-fallback pieces).
void AppendSanitized(std::string_view bytes, std::string* out);

// Appends `bytes` to `out`, writing one U+FFFD for each maximal ill-formed subsequence (as
// Rust's String::from_utf8_lossy, Python's errors="replace" and the WHATWG decoder do; a
// truncated 4-byte character is one U+FFFD).
void AppendUtf8Lossy(std::string_view bytes, std::string* out);

// True when all of `s` is well-formed UTF-8.
bool IsValidUtf8(std::string_view s);

}  // namespace strata::tokenizer

// JavaScript string and number semantics on UTF-8 text, for reproducing @huggingface/jinja
// byte for byte: JavaScript strings are UTF-16, so lengths and indices count UTF-16 code
// units, `trim` strips the ECMAScript white-space set, and numbers print the way
// Number.prototype.toString prints them.
//
// Invalid UTF-8 is read as U+FFFD per bad byte (as TextDecoder does); lone surrogates, which a
// JavaScript string can hold, are written as 3-byte WTF-8 sequences.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace strata::chat {

// UTF-8 <-> UTF-16 code units.
std::u16string Utf8ToUtf16(std::string_view s);
std::string Utf16ToUtf8(std::u16string_view s);

// Appends code point `cp` as UTF-8 (WTF-8 for surrogates).
void AppendCodePoint(uint32_t cp, std::string* out);

// Decodes the code point at byte `*pos` and advances `*pos`.
uint32_t NextCodePoint(std::string_view s, size_t* pos);

// JavaScript's `s.length`: UTF-16 code units.
int64_t Utf16Length(std::string_view s);

// ECMAScript WhiteSpace or LineTerminator (what /\s/ and String.prototype.trim match).
bool IsJsSpace(uint32_t cp);

// Byte length of the JavaScript white-space character at `pos`, or 0.
size_t JsSpaceAt(std::string_view s, size_t pos);

// String.prototype.trim / trimStart / trimEnd.
std::string JsTrim(std::string_view s, bool start, bool end);

// toUpperCase / toLowerCase for ASCII letters; other characters are kept (documented
// difference: JavaScript maps all of Unicode).
std::string AsciiUpper(std::string_view s);
std::string AsciiLower(std::string_view s);

// jinja-js `title`: uppercases every ASCII word character that follows a non-word character
// (/\b\w/g); the rest is unchanged.
std::string JsTitle(std::string_view s);

// Number.prototype.toString for a double ("1", "0.1", "1e+21", "NaN", "-Infinity").
std::string JsNumberToString(double d);

// JSON.stringify of a string; with ensure_ascii every UTF-16 unit >= 0x7f is escaped \uXXXX.
std::string JsonQuote(std::string_view s, bool ensure_ascii);

// parseInt(s, 10) and parseFloat(s); false when JavaScript would return NaN.
bool JsParseInt(std::string_view s, int64_t* out);
bool JsParseFloat(std::string_view s, double* out);

// Number(s) for loose equality: false when it is NaN.
bool JsStringToNumber(std::string_view s, double* out);

}  // namespace strata::chat

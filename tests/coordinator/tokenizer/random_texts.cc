#include "tests/coordinator/tokenizer/random_texts.h"

#include <iterator>
#include <string_view>

namespace strata::tokenizer::testing {
namespace {

// Fragments are joined without separators, so boundaries between them (letter after digit,
// mark after space, ...) vary too.
constexpr std::string_view kFragments[] = {
    // Latin, with accents precomposed and decomposed (e + U+0301), and ligatures.
    "Hello",
    " world",
    "Führer",
    " café",
    " cafe\xCC\x81",
    " naïve",
    " ﬁnance",
    " ÆØÅ",
    " Ǆemal",
    " İstanbul",
    " straße",
    " SHOUTING",
    " mIxEd",
    " ſtate",
    // Contractions, in mixed case and with typographic apostrophes.
    " don't",
    " I'LL",
    " we'Ve",
    " she'd",
    " it'S",
    " they're",
    " can’t",
    "'s",
    " O'Neil",
    // Cyrillic, Greek, Armenian, Georgian.
    " нещо на Български",
    " Привет",
    " Ελληνικά ΐ ώ",
    " Ωmega",
    " Բարեւ",
    " ქართული",
    // CJK, Japanese, Korean.
    " 你好世界",
    "中文",
    " 日本語のテキスト",
    "カタカナ",
    " 한국어 텍스트",
    "漢字かな交じり",
    // Arabic, Hebrew, Devanagari, Thai, Tamil, Ethiopic.
    " مرحبا بالعالم",
    " שלום עולם",
    " नमस्ते दुनिया",
    " สวัสดีครับ",
    " வணக்கம்",
    " ሰላም",
    // Emoji: plain, ZWJ family, skin tones, flags, keycaps, variation selectors.
    " 🦙",
    "🦙🦙",
    " 👨‍👩‍👧‍👦",
    " 👍🏽",
    "🇫🇷🇯🇵",
    " 1️⃣",
    " ❤️",
    " 🤖💬",
    "😀",
    // Combining marks on their own and stacked.
    " a\xCC\x88\xCC\x81",
    " \xCC\x81",
    " Z\xCD\x91\xCD\x8B\xCC\x80",
    " ก\xE0\xB8\xB9",
    // Digits: runs of every length, other scripts' digits, numbers with separators.
    " 1",
    " 12",
    " 123",
    " 1234",
    " 12345678901",
    "3.14159",
    " 1,000,000",
    " ٣٤٥",
    " １２３",
    " ๑๒๓",
    " Ⅻ",
    " ½",
    " 2²",
    " 0x1F",
    // Whitespace runs.
    " ",
    "  ",
    "   ",
    "\t",
    "\t\t",
    "\n",
    "\n\n",
    "\n\n\n",
    "\r\n",
    " \n ",
    "\u00A0",
    "\u3000",
    "  \t\n",
    "\u2009",
    // Punctuation and symbols.
    "!!!",
    "...",
    " ---",
    " «quotes»",
    " „German“",
    " (parens)",
    " [brackets]",
    " {braces}",
    " @user",
    " #tag",
    " $100",
    " 50%",
    " a+b=c",
    " ~/path",
    // Code.
    "\nint main() {\n    return 0;\n}\n",
    " std::vector<int> v;",
    " if (x != y) { x++; }",
    "\tdef f(x):\n\t\treturn x**2",
    " <div class=\"a\">",
    " SELECT * FROM t;",
};

// SplitMix64: tiny, portable, deterministic.
uint64_t Next(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

std::vector<std::string> RandomTexts(int count, int max_fragments, uint64_t seed) {
  uint64_t state = seed;
  std::vector<std::string> texts;
  texts.reserve(count);
  for (int i = 0; i < count; ++i) {
    const int n = 1 + static_cast<int>(Next(&state) % static_cast<uint64_t>(max_fragments));
    std::string text;
    for (int j = 0; j < n; ++j) text.append(kFragments[Next(&state) % std::size(kFragments)]);
    texts.push_back(std::move(text));
  }
  return texts;
}

}  // namespace strata::tokenizer::testing

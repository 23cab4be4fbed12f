// Hugging Face tokenizer.json normalizers: NFC, NFD, NFKC, NFKD (utf8proc), Lowercase, Strip,
// Prepend, Replace (string or regex pattern) and Sequence of these. A Normalizer is the
// flattened list of steps, applied in order to each piece of text between added tokens.
//
// Offsets are not tracked (Strata never reports them), so every step is a plain string
// transform. Thread-safety: immutable after Parse.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/json.hpp"
#include "coordinator/tokenizer/regex.h"

namespace strata::tokenizer {

// Replaces every match of a tokenizer.json pattern ({"String": s} or {"Regex": r}) in `text`.
// Shared by the Replace normalizer and the Replace decoder.
struct ReplacePattern {
  std::string literal;
  std::shared_ptr<const Regex> regex;  // set for {"Regex": ...}

  static absl::StatusOr<ReplacePattern> Parse(const boost::json::value& pattern,
                                              std::string_view source);
  std::string ReplaceAll(std::string_view text, std::string_view content) const;
};

class Normalizer {
 public:
  // Parses tokenizer.json's "normalizer" value (null: identity). Unsupported types (Bert,
  // Precompiled, ...) are Unimplemented, naming `source` and the type.
  static absl::StatusOr<Normalizer> Parse(const boost::json::value& json, std::string_view source);

  // True when Apply is the identity.
  bool empty() const { return steps_.empty(); }

  // `text` (valid UTF-8) normalized.
  std::string Apply(std::string_view text) const;

  // How many times shorter normalized text can be than its input: 1 for none, 4 for Unicode
  // normalization and lowercasing (composition and compatibility mappings shrink a character
  // at most threefold, e.g. the Kelvin sign to "k"), 0 when a step can remove any amount (strip,
  // a regex replacement or a shorter one).
  int max_shrink() const;

 private:
  enum class Kind { kNfc, kNfd, kNfkc, kNfkd, kLowercase, kStrip, kPrepend, kReplace };
  struct Step {
    Kind kind;
    ReplacePattern pattern;  // kReplace
    std::string content;     // kReplace: replacement; kPrepend: prefix
    bool left = false;       // kStrip
    bool right = false;      // kStrip
  };

  // Appends the step(s) of one non-Sequence component of type `type`.
  absl::Status ParseStep(const boost::json::object& obj, const std::string& type,
                         const std::string& where);
  static void ApplyStep(const Step& step, std::string* text);

  std::vector<Step> steps_;
};

// Unicode helpers over utf8proc shared by normalizers and pre-tokenizers.
// Decodes the code point starting at `s` (valid UTF-8, non-empty); sets *len to its length.
char32_t DecodeCodePoint(std::string_view s, size_t* len);
// Rust's char::is_whitespace (Unicode White_Space).
bool IsUnicodeWhitespace(char32_t c);

}  // namespace strata::tokenizer

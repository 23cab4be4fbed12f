#include "coordinator/tokenizer/added_tokens.h"

#include <algorithm>

#include "coordinator/tokenizer/normalizer.h"
#include "utf8proc.h"

namespace strata::tokenizer {
namespace {

// tokenizers' is_word_character: alphanumeric or '_'.
bool IsWordChar(char32_t c) {
  if (c == '_') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

// Start of the last character of non-empty `s`.
size_t LastCharStart(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>& tokens) {
  for (const AddedToken& token : tokens) {
    if (!token.content.empty()) tokens_.push_back(token);
  }
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const std::string_view content = tokens_[i].content;
    if (!by_content_.try_emplace(content, static_cast<int>(i)).second) continue;
    lengths_[static_cast<unsigned char>(content[0])].push_back(content.size());
  }
  for (auto& lengths : lengths_) {
    std::sort(lengths.begin(), lengths.end(), std::greater<>());
    lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
  }
}

int AddedTokenMatcher::LongestAt(std::string_view text, size_t pos) const {
  for (size_t len : lengths_[static_cast<unsigned char>(text[pos])]) {
    if (len > text.size() - pos) continue;
    const auto it = by_content_.find(text.substr(pos, len));
    if (it != by_content_.end()) return it->second;
  }
  return -1;
}

void AddedTokenMatcher::Split(std::string_view text, bool at_start, bool parse_special,
                              std::vector<TextSegment>* out) const {
  size_t emitted = 0;  // text before this has been written to `out`
  const auto emit_text = [&](size_t end) {
    if (end > emitted)
      out->push_back({text.substr(emitted, end - emitted), -1, at_start && emitted == 0});
  };
  for (size_t pos = 0; pos < text.size();) {
    const int index = empty() ? -1 : LongestAt(text, pos);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[index];
    size_t start = pos;
    size_t stop = pos + token.content.size();
    bool skip = token.special && !parse_special;
    if (!skip && token.single_word) {
      size_t len;
      const bool word_before =
          start > 0 &&
          IsWordChar(DecodeCodePoint(text.substr(LastCharStart(text.substr(0, start))), &len));
      const bool word_after =
          stop < text.size() && IsWordChar(DecodeCodePoint(text.substr(stop), &len));
      skip = word_before || word_after;
    }
    if (skip) {  // as tokenizers: matching resumes after the skipped match
      pos = stop;
      continue;
    }
    size_t len;
    while (token.lstrip && start > emitted &&
           IsUnicodeWhitespace(
               DecodeCodePoint(text.substr(LastCharStart(text.substr(0, start))), &len))) {
      start = LastCharStart(text.substr(0, start));
    }
    while (token.rstrip && stop < text.size() &&
           IsUnicodeWhitespace(DecodeCodePoint(text.substr(stop), &len))) {
      stop += len;
    }
    emit_text(start);
    out->push_back({text.substr(start, stop - start), token.id, false});
    emitted = stop;
    pos = stop;
  }
  emit_text(text.size());
}

}  // namespace strata::tokenizer

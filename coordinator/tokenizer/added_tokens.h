// Added tokens (tokenizer.json "added_tokens", GGUF control / user-defined tokens): strings that
// are cut out of the text before normalization and BPE, each becoming its own id, as Hugging Face
// tokenizers' AddedVocabulary does: leftmost-longest matching; `lstrip` / `rstrip` swallow the
// whitespace before / after a match; `single_word` only matches outside words. Special tokens
// are only matched when the caller parses special tokens (chat templates); non-special added
// tokens are always matched.
//
// Thread-safety: immutable after construction.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace strata::tokenizer {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;  // matched on normalized text (tokenizer.json "normalized")
};

// A piece of input: text to tokenize (`id` == -1) or an added token.
struct TextSegment {
  std::string_view text;
  int32_t id = -1;
  bool at_start = false;  // text that begins at offset 0 of the input
};

class AddedTokenMatcher {
 public:
  // Matches the tokens of `tokens` (empty contents are ignored).
  explicit AddedTokenMatcher(const std::vector<AddedToken>& tokens);

  bool empty() const { return tokens_.empty(); }

  // Cuts `text` into segments. `at_start`: `text` begins at offset 0 of the input.
  void Split(std::string_view text, bool at_start, bool parse_special,
             std::vector<TextSegment>* out) const;

 private:
  // Longest token at `pos` (index into tokens_), or -1.
  int LongestAt(std::string_view text, size_t pos) const;

  std::vector<AddedToken> tokens_;
  absl::flat_hash_map<std::string_view, int> by_content_;
  // Distinct token lengths for each first byte, longest first.
  std::array<std::vector<size_t>, 256> lengths_;
};

}  // namespace strata::tokenizer

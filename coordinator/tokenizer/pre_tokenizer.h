// Hugging Face pre-tokenizers: how normalized text is cut into words before BPE. Supported:
// Split (string or regex pattern; behaviors Removed, Isolated, MergedWithPrevious,
// MergedWithNext, Contiguous; invert), ByteLevel (add_prefix_space, use_regex with GPT-2's
// pattern), Metaspace (replacement, prepend_scheme, split), Digits, Punctuation, Whitespace,
// WhitespaceSplit, CharDelimiterSplit and Sequence. Most are a Split with a fixed pattern.
//
// ByteLevel is not applied as a character mapping here: a byte-level model works on the raw
// bytes of each word (see BpeModel), which is equivalent and cheaper. byte_level() reports it.
//
// Thread-safety: immutable after construction; Split may run concurrently.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/json.hpp"
#include "coordinator/tokenizer/regex.h"

namespace strata::tokenizer {

// One word. `at_start`: it begins at offset 0 of the input (Metaspace prepend_scheme "first").
struct PreToken {
  std::string_view text;
  bool at_start = false;
};

class PreTokenizer {
 public:
  // Parses tokenizer.json's "pre_tokenizer" value (null: the whole text is one word).
  static absl::StatusOr<PreTokenizer> Parse(const boost::json::value& json,
                                            std::string_view source);

  // llama.cpp's byte-level pre-tokenization: each regex in turn splits every word further,
  // keeping matches and the text between them (Split, Isolated), then ByteLevel.
  static absl::StatusOr<PreTokenizer> FromRegexSequence(const std::vector<std::string>& patterns,
                                                        std::string_view source);

  // True when the steps end with ByteLevel: the model must see raw bytes.
  bool byte_level() const { return byte_level_; }

  // True when a split removes what it matches (the text is not all kept).
  bool drops_text() const;

  // Appends the words of `text` to `out`. Views point into `text` or into strings appended to
  // `arena` (which must outlive their use).
  void Split(std::string_view text, bool at_start, std::vector<PreToken>* out,
             std::deque<std::string>* arena) const;

 private:
  enum class Kind { kSplit, kByteLevelPrefix, kMetaspace };
  enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
  enum class Prepend { kAlways, kFirst, kNever };
  struct Step {
    Kind kind = Kind::kSplit;
    std::shared_ptr<const Regex> regex;  // kSplit with a regex
    std::string literal;                 // kSplit with a string; kMetaspace: replacement
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
    Prepend prepend = Prepend::kNever;  // kMetaspace
    bool split = true;                  // kMetaspace
  };

  // Appends the step(s) of one non-Sequence component of type `type`.
  absl::Status ParseStep(const boost::json::object& obj, const std::string& type,
                         const std::string& where);
  absl::Status AddRegexSplit(std::string_view pattern, Behavior behavior, bool invert,
                             std::string_view source);
  // Applies one step to every word of `words`.
  void ApplyStep(const Step& step, std::vector<PreToken>* words,
                 std::deque<std::string>* arena) const;
  static void SplitWord(const Step& step, const PreToken& word, std::vector<PreToken>* out);

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace strata::tokenizer

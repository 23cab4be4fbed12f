// Streaming detokenization: ids arrive one at a time, text leaves in complete UTF-8 pieces.
//
// Decoding token by token is wrong for two reasons: a character may be split over several
// byte-fallback tokens, and SentencePiece drops the leading space of the first token of a
// decode. So each step decodes a short window of recent ids twice, without and with the new
// ids, and emits the difference once it no longer ends in an incomplete character (U+FFFD).
// The window then slides forward to the ids just emitted.
//
// Invariant: Prefix text + concatenation of all Add() results + Finish() equals
// tokenizer.Decode(prompt_ids + all added ids, skip_special) minus Decode(prompt_ids); with no
// prompt ids, exactly tokenizer.Decode(all added ids, skip_special).
//
// Not thread-safe; use one per sequence. The tokenizer must outlive it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "coordinator/tokenizer/tokenizer.h"

namespace strata::tokenizer {

class IncrementalDetokenizer {
 public:
  // `prompt_ids` (optional) are the ids before the first Add(): their tail is kept as context
  // so that the first generated token keeps its leading space ("time" + "\u2581there" ->
  // " there"). They produce no output themselves.
  IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special,
                         absl::Span<const int32_t> prompt_ids = {});

  // Adds one id; returns the text that became complete (possibly empty). Always valid UTF-8.
  absl::StatusOr<std::string> Add(int32_t id);

  // Returns any text held back (an incomplete character at the end of the sequence is
  // written as U+FFFD, as Decode does).
  absl::StatusOr<std::string> Finish();

 private:
  // Decoded text of ids_[prefix_offset_, read_offset_) and of ids_[prefix_offset_, end).
  absl::StatusOr<std::string> Pending(bool final);

  const Tokenizer& tokenizer_;
  const bool skip_special_;
  std::vector<int32_t> ids_;
  size_t prefix_offset_ = 0;  // start of the decode window
  size_t read_offset_ = 0;    // ids before this have been emitted
};

}  // namespace strata::tokenizer

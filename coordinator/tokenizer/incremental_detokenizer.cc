#include "coordinator/tokenizer/incremental_detokenizer.h"

#include <algorithm>
#include <string_view>

#include "common/status.h"

namespace strata::tokenizer {
namespace {

// Prompt ids kept as context: enough for a multi-byte character plus the token before it.
constexpr size_t kPromptContext = 6;
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special,
                                               absl::Span<const int32_t> prompt_ids)
    : tokenizer_(tokenizer), skip_special_(skip_special) {
  const size_t keep = std::min(prompt_ids.size(), kPromptContext);
  ids_.assign(prompt_ids.end() - keep, prompt_ids.end());
  read_offset_ = ids_.size();
}

absl::StatusOr<std::string> IncrementalDetokenizer::Add(int32_t id) {
  ids_.push_back(id);
  return Pending(/*final=*/false);
}

absl::StatusOr<std::string> IncrementalDetokenizer::Finish() { return Pending(/*final=*/true); }

absl::StatusOr<std::string> IncrementalDetokenizer::Pending(bool final) {
  if (read_offset_ == ids_.size()) return std::string();
  const absl::Span<const int32_t> ids(ids_);
  STRATA_ASSIGN_OR_RETURN(
      std::string prefix,
      tokenizer_.Decode(ids.subspan(prefix_offset_, read_offset_ - prefix_offset_),
                        skip_special_));
  STRATA_ASSIGN_OR_RETURN(std::string text,
                          tokenizer_.Decode(ids.subspan(prefix_offset_), skip_special_));
  // Hold back while the window ends in an incomplete character (or nothing new appeared).
  if (text.size() <= prefix.size() || (!final && text.ends_with(kReplacement))) {
    if (!final) return std::string();
  }
  size_t start = std::min(prefix.size(), text.size());
  if (!text.starts_with(prefix)) {
    // Not expected for prefix-stable decoders; never start inside a UTF-8 character.
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  }
  std::string out = text.substr(start);
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  return out;
}

}  // namespace strata::tokenizer

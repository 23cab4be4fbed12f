// Pre-tokenization as Hugging Face tokenizers does it: every step maps each word to sub-words.
// A Split finds the pattern's matches in a word, labels the pieces (match or not, flipped by
// `invert`), and regroups them by behavior exactly as tokenizers' NormalizedString::split:
//   Removed: drop matches; Isolated: matches are words of their own; MergedWithPrevious /
//   MergedWithNext: a match joins the word before / after it; Contiguous: runs of equally
//   labelled pieces join. Empty words are dropped.
#include "coordinator/tokenizer/pre_tokenizer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/status.h"
#include "coordinator/tokenizer/json_util.h"

namespace strata::tokenizer {
namespace {


// GPT-2's pattern, used by ByteLevel(use_regex=true).
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Rust's char::is_ascii_punctuation() || char::is_punctuation().
constexpr std::string_view kPunctuationPattern = R"([\p{P}!-/:-@\[-`{-~])";
constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // U+2581

struct Range {
  size_t begin;
  size_t end;
  bool is_match;
};

}  // namespace

absl::StatusOr<PreTokenizer> PreTokenizer::Parse(const boost::json::value& json,
                                                 std::string_view source) {
  PreTokenizer pre;
  STRATA_RETURN_IF_ERROR(ForEachComponent(
      json, absl::StrCat(Sv(source), ": pre_tokenizer"), "pretokenizers",
      [&](const boost::json::object& obj, const std::string& type, const std::string& where) {
        return pre.ParseStep(obj, type, where);
      }));
  return pre;
}

absl::StatusOr<PreTokenizer> PreTokenizer::FromRegexSequence(
    const std::vector<std::string>& patterns, std::string_view source) {
  PreTokenizer pre;
  for (const std::string& pattern : patterns) {
    STRATA_RETURN_IF_ERROR(pre.AddRegexSplit(pattern, Behavior::kIsolated, false, source));
  }
  pre.byte_level_ = true;
  return pre;
}

absl::Status PreTokenizer::AddRegexSplit(std::string_view pattern, Behavior behavior, bool invert,
                                         std::string_view source) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Regex> regex, Regex::Create(pattern, source));
  Step step;
  step.regex = std::move(regex);
  step.behavior = behavior;
  step.invert = invert;
  steps_.push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status PreTokenizer::ParseStep(const boost::json::object& obj, const std::string& type,
                                     const std::string& where) {
  if (byte_level_) {
    return absl::UnimplementedError(
        absl::StrCat(where, ": '", type, "' after ByteLevel is not supported"));
  }
  const auto behavior_of = [&](Behavior absent) -> absl::StatusOr<Behavior> {
    const std::string name(JsonString(obj, "behavior").value_or(""));
    if (name.empty()) return absent;
    if (name == "Removed") return Behavior::kRemoved;
    if (name == "Isolated") return Behavior::kIsolated;
    if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
    if (name == "MergedWithNext") return Behavior::kMergedWithNext;
    if (name == "Contiguous") return Behavior::kContiguous;
    return absl::InvalidArgumentError(absl::StrCat(where, ": unknown split behavior '", name, "'"));
  };
  if (type == "Split") {
    STRATA_ASSIGN_OR_RETURN(const Behavior behavior, behavior_of(Behavior::kIsolated));
    const bool invert = JsonBool(obj, "invert", false);
    const boost::json::value* pattern = obj.if_contains("pattern");
    if (pattern != nullptr && pattern->is_object()) {
      if (auto regex = JsonString(pattern->as_object(), "Regex")) {
        return AddRegexSplit(*regex, behavior, invert, where);
      }
      if (auto literal = JsonString(pattern->as_object(), "String")) {
        Step step;
        step.literal = std::string(*literal);
        step.behavior = behavior;
        step.invert = invert;
        steps_.push_back(std::move(step));
        return absl::OkStatus();
      }
    }
    return absl::InvalidArgumentError(where + " Split has no String/Regex pattern");
  }
  if (type == "ByteLevel") {
    if (JsonBool(obj, "add_prefix_space", true)) {
      Step step;
      step.kind = Kind::kByteLevelPrefix;
      steps_.push_back(std::move(step));
    }
    if (JsonBool(obj, "use_regex", true)) {
      STRATA_RETURN_IF_ERROR(AddRegexSplit(kGpt2Pattern, Behavior::kIsolated, false, where));
    }
    byte_level_ = true;
    return absl::OkStatus();
  }
  if (type == "Metaspace") {
    Step step;
    step.kind = Kind::kMetaspace;
    step.literal = std::string(JsonString(obj, "replacement").value_or(kMetaspace));
    step.split = JsonBool(obj, "split", true);
    const std::string scheme(JsonString(obj, "prepend_scheme").value_or(""));
    if (scheme == "always") {
      step.prepend = Prepend::kAlways;
    } else if (scheme == "first") {
      step.prepend = Prepend::kFirst;
    } else if (scheme == "never") {
      step.prepend = Prepend::kNever;
    } else {
      step.prepend = JsonBool(obj, "add_prefix_space", true) ? Prepend::kAlways : Prepend::kNever;
    }
    steps_.push_back(std::move(step));
    return absl::OkStatus();
  }
  if (type == "Digits") {
    return AddRegexSplit(JsonBool(obj, "individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)",
                         Behavior::kIsolated, false, where);
  }
  if (type == "Punctuation") {
    STRATA_ASSIGN_OR_RETURN(const Behavior behavior, behavior_of(Behavior::kIsolated));
    return AddRegexSplit(kPunctuationPattern, behavior, false, where);
  }
  if (type == "Whitespace")
    return AddRegexSplit(R"(\w+|[^\w\s]+)", Behavior::kRemoved, true, where);
  if (type == "WhitespaceSplit") return AddRegexSplit(R"(\s+)", Behavior::kRemoved, false, where);
  if (type == "CharDelimiterSplit") {
    Step step;
    step.literal = std::string(JsonString(obj, "delimiter").value_or(" "));
    step.behavior = Behavior::kRemoved;
    steps_.push_back(std::move(step));
    return absl::OkStatus();
  }
  return absl::UnimplementedError(
      absl::StrCat(where, " type '", type,
                   "' is not supported (Split, ByteLevel, Metaspace, Digits, "
                   "Punctuation, Whitespace, WhitespaceSplit, CharDelimiterSplit, Sequence)"));
}

void PreTokenizer::Split(std::string_view text, bool at_start, std::vector<PreToken>* out,
                         std::deque<std::string>* arena) const {
  if (text.empty()) return;
  std::vector<PreToken> words = {{text, at_start}};
  for (const Step& step : steps_) ApplyStep(step, &words, arena);
  out->insert(out->end(), words.begin(), words.end());
}

void PreTokenizer::ApplyStep(const Step& step, std::vector<PreToken>* words,
                             std::deque<std::string>* arena) const {
  if (step.kind == Kind::kByteLevelPrefix) {
    for (PreToken& word : *words) {
      if (word.text.starts_with(' ')) continue;
      std::string& prefixed = arena->emplace_back(1, ' ');
      prefixed.append(word.text);
      word.text = prefixed;
    }
    return;
  }
  if (step.kind == Kind::kMetaspace) {
    for (PreToken& word : *words) {
      std::string replaced;
      for (char c : word.text) {
        if (c == ' ') {
          replaced.append(step.literal);
        } else {
          replaced.push_back(c);
        }
      }
      const bool prepend =
          step.prepend == Prepend::kAlways || (step.prepend == Prepend::kFirst && word.at_start);
      if (prepend && !std::string_view(replaced).starts_with(step.literal)) {
        replaced.insert(0, step.literal);
      }
      word.text = arena->emplace_back(std::move(replaced));
    }
    if (!step.split) return;
  }
  std::vector<PreToken> result;
  result.reserve(words->size() * 2);
  for (const PreToken& word : *words) SplitWord(step, word, &result);
  *words = std::move(result);
}

void PreTokenizer::SplitWord(const Step& step, const PreToken& word, std::vector<PreToken>* out) {
  const std::string_view text = word.text;
  // 1. Matches of the pattern.
  std::vector<std::pair<size_t, size_t>> matches;
  if (step.regex) {
    step.regex->FindAll(text, &matches);
  } else if (!step.literal.empty()) {
    for (size_t pos = 0; (pos = text.find(step.literal, pos)) != std::string_view::npos;
         pos += step.literal.size()) {
      matches.emplace_back(pos, pos + step.literal.size());
    }
  }
  const Behavior behavior =
      step.kind == Kind::kMetaspace ? Behavior::kMergedWithNext : step.behavior;
  // 2. Label every piece of the word.
  std::vector<Range> ranges;
  ranges.reserve(matches.size() * 2 + 1);
  size_t last = 0;
  for (const auto& [begin, end] : matches) {
    if (begin > last) ranges.push_back({last, begin, step.invert});
    ranges.push_back({begin, end, !step.invert});
    last = end;
  }
  if (last < text.size()) ranges.push_back({last, text.size(), step.invert});
  // 3. Regroup by behavior.
  std::vector<Range> words;
  words.reserve(ranges.size());
  bool previous_match = false;
  switch (behavior) {
    case Behavior::kRemoved:
      for (const Range& r : ranges) {
        if (!r.is_match) words.push_back(r);
      }
      break;
    case Behavior::kIsolated:
      words = ranges;
      break;
    case Behavior::kMergedWithPrevious:
      for (const Range& r : ranges) {
        if (r.is_match && !previous_match && !words.empty()) {
          words.back().end = r.end;
        } else {
          words.push_back(r);
        }
        previous_match = r.is_match;
      }
      break;
    case Behavior::kMergedWithNext:
      for (auto it = ranges.rbegin(); it != ranges.rend(); ++it) {
        if (it->is_match && !previous_match && !words.empty()) {
          words.back().begin = it->begin;
        } else {
          words.push_back(*it);
        }
        previous_match = it->is_match;
      }
      std::reverse(words.begin(), words.end());
      break;
    case Behavior::kContiguous:
      for (const Range& r : ranges) {
        if (r.is_match == previous_match && !words.empty()) {
          words.back().end = r.end;
        } else {
          words.push_back(r);
        }
        previous_match = r.is_match;
      }
      break;
  }
  for (const Range& r : words) {
    if (r.end > r.begin)
      out->push_back({text.substr(r.begin, r.end - r.begin), word.at_start && r.begin == 0});
  }
}

bool PreTokenizer::drops_text() const {
  for (const Step& step : steps_) {
    if (step.kind == Kind::kSplit && step.behavior == Behavior::kRemoved) return true;
  }
  return false;
}

}  // namespace strata::tokenizer

// Normalizer steps over utf8proc (Unicode normalization forms and case mapping).
#include "coordinator/tokenizer/normalizer.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/status.h"
#include "coordinator/tokenizer/json_util.h"
#include "utf8proc.h"

namespace strata::tokenizer {
namespace {


std::string Utf8procMapChunk(std::string_view text, int options) {
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   static_cast<utf8proc_ssize_t>(text.size()), &out,
                   static_cast<utf8proc_option_t>(options | UTF8PROC_STABLE));
  if (n < 0) return std::string(text);  // invalid input: leave as is (callers pass valid UTF-8)
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

// Normalization forms leave ASCII alone, and no ASCII character combines with the character
// before it; so only runs of non-ASCII characters, with the one ASCII character before each
// (a base that may take combining marks), go through utf8proc.
std::string Utf8procMap(std::string_view text, int options) {
  std::string out;
  size_t copied = 0;
  for (size_t i = 0; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t start = i > copied ? i - 1 : i;
    size_t end = i;
    while (end < text.size() && static_cast<unsigned char>(text[end]) >= 0x80) ++end;
    out.append(text.substr(copied, start - copied));
    out.append(Utf8procMapChunk(text.substr(start, end - start), options));
    copied = i = end;
  }
  if (copied == 0) return std::string(text);
  out.append(text.substr(copied));
  return out;
}

void AppendCodePoint(char32_t c, std::string* out) {
  utf8proc_uint8_t buf[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(c), buf);
  out->append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

}  // namespace

char32_t DecodeCodePoint(std::string_view s, size_t* len) {
  utf8proc_int32_t c = 0;
  const utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                              static_cast<utf8proc_ssize_t>(s.size()), &c);
  *len = n > 0 ? static_cast<size_t>(n) : 1;
  return n > 0 ? static_cast<char32_t>(c) : 0xFFFD;
}

bool IsUnicodeWhitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

absl::StatusOr<ReplacePattern> ReplacePattern::Parse(const boost::json::value& pattern,
                                                     std::string_view source) {
  ReplacePattern result;
  if (pattern.is_object()) {
    if (auto s = JsonString(pattern.as_object(), "String")) {
      result.literal = std::string(*s);
      return result;
    }
    if (auto r = JsonString(pattern.as_object(), "Regex")) {
      STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Regex> regex, Regex::Create(*r, source));
      result.regex = std::move(regex);
      return result;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat(Sv(source), ": pattern must be {\"String\": ...} or {\"Regex\": ...}"));
}

std::string ReplacePattern::ReplaceAll(std::string_view text, std::string_view content) const {
  std::string out;
  size_t last = 0;
  if (regex) {
    std::vector<std::pair<size_t, size_t>> matches;
    regex->FindAll(text, &matches);
    for (const auto& [begin, end] : matches) {
      out.append(text.substr(last, begin - last)).append(content);
      last = end;
    }
  } else if (!literal.empty()) {
    for (size_t pos; (pos = text.find(literal, last)) != std::string_view::npos;) {
      out.append(text.substr(last, pos - last)).append(content);
      last = pos + literal.size();
    }
  }
  out.append(text.substr(last));
  return out;
}

absl::StatusOr<Normalizer> Normalizer::Parse(const boost::json::value& json,
                                             std::string_view source) {
  Normalizer normalizer;
  STRATA_RETURN_IF_ERROR(ForEachComponent(
      json, absl::StrCat(Sv(source), ": normalizer"), "normalizers",
      [&](const boost::json::object& obj, const std::string& type, const std::string& where) {
        return normalizer.ParseStep(obj, type, where);
      }));
  return normalizer;
}

absl::Status Normalizer::ParseStep(const boost::json::object& obj, const std::string& type,
                                   const std::string& where) {
  Step step;
  if (type == "NFC") {
    step.kind = Kind::kNfc;
  } else if (type == "NFD") {
    step.kind = Kind::kNfd;
  } else if (type == "NFKC") {
    step.kind = Kind::kNfkc;
  } else if (type == "NFKD") {
    step.kind = Kind::kNfkd;
  } else if (type == "Lowercase") {
    step.kind = Kind::kLowercase;
  } else if (type == "Strip") {
    step.kind = Kind::kStrip;
    step.left = JsonBool(obj, "strip_left", true);
    step.right = JsonBool(obj, "strip_right", true);
  } else if (type == "Prepend") {
    step.kind = Kind::kPrepend;
    step.content = std::string(JsonString(obj, "prepend").value_or(""));
  } else if (type == "Replace") {
    step.kind = Kind::kReplace;
    const boost::json::value* pattern = obj.if_contains("pattern");
    if (pattern == nullptr) return absl::InvalidArgumentError(where + " Replace has no pattern");
    STRATA_ASSIGN_OR_RETURN(step.pattern, ReplacePattern::Parse(*pattern, where));
    step.content = std::string(JsonString(obj, "content").value_or(""));
  } else {
    return absl::UnimplementedError(absl::StrCat(where, " type '", type,
                                                 "' is not supported (NFC, NFD, NFKC, NFKD, "
                                                 "Lowercase, Strip, Prepend, Replace, Sequence)"));
  }
  steps_.push_back(std::move(step));
  return absl::OkStatus();
}

std::string Normalizer::Apply(std::string_view text) const {
  std::string out(text);
  for (const Step& step : steps_) ApplyStep(step, &out);
  return out;
}

void Normalizer::ApplyStep(const Step& step, std::string* text) {
  switch (step.kind) {
    case Kind::kNfc:
      *text = Utf8procMap(*text, UTF8PROC_COMPOSE);
      return;
    case Kind::kNfd:
      *text = Utf8procMap(*text, UTF8PROC_DECOMPOSE);
      return;
    case Kind::kNfkc:
      *text = Utf8procMap(*text, UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
      return;
    case Kind::kNfkd:
      *text = Utf8procMap(*text, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
      return;
    case Kind::kLowercase: {
      std::string out;
      out.reserve(text->size());
      for (std::string_view s = *text; !s.empty();) {
        size_t len;
        const char32_t c = DecodeCodePoint(s, &len);
        AppendCodePoint(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))),
                        &out);
        s.remove_prefix(len);
      }
      *text = std::move(out);
      return;
    }
    case Kind::kStrip: {
      std::string_view s = *text;
      size_t len;
      while (step.left && !s.empty() && IsUnicodeWhitespace(DecodeCodePoint(s, &len))) {
        s.remove_prefix(len);
      }
      while (step.right && !s.empty()) {
        size_t start = s.size() - 1;
        while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
        if (!IsUnicodeWhitespace(DecodeCodePoint(s.substr(start), &len))) break;
        s.remove_suffix(s.size() - start);
      }
      *text = std::string(s);
      return;
    }
    case Kind::kPrepend:
      if (!text->empty()) text->insert(0, step.content);
      return;
    case Kind::kReplace:
      *text = step.pattern.ReplaceAll(*text, step.content);
      return;
  }
}

int Normalizer::max_shrink() const {
  int shrink = 1;
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::kStrip: return 0;
      case Kind::kReplace:
        // A literal replaced by something at least as long (Gemma's " " -> "\u2581") only
        // lengthens the text; a regex or a shorter replacement can remove any amount.
        if (step.pattern.regex != nullptr || step.content.size() < step.pattern.literal.size()) {
          return 0;
        }
        break;
      case Kind::kPrepend: break;
      default: shrink = 4;
    }
  }
  return shrink;
}

}  // namespace strata::tokenizer

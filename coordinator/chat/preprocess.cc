// Preprocessing of template text (step 1 of lexer.h): each pass is one of jinja-js's regular
// expression replacements, written out so that every byte keeps its original line number.
#include "coordinator/chat/preprocess.h"

#include "coordinator/chat/js_text.h"

namespace strata::chat {
namespace {

bool IsLineStart(const std::string& s, size_t i) {
  if (i == 0) return true;
  if (s[i - 1] == '\n' || s[i - 1] == '\r') return true;
  // U+2028 / U+2029 are line terminators for the /m flag too.
  return i >= 3 && s.compare(i - 3, 2, "\xE2\x80") == 0 &&
         (s[i - 1] == '\xA8' || s[i - 1] == '\xA9');
}

// lstrip_blocks: /^[ \t]*({[#%-])/gm -> "$1".
Source LstripBlocks(const Source& in) {
  Source out;
  const std::string& s = in.text;
  for (size_t i = 0; i < s.size();) {
    if (IsLineStart(s, i)) {
      size_t j = i;
      while (j < s.size() && (s[j] == ' ' || s[j] == '\t')) ++j;
      if (j + 1 < s.size() && s[j] == '{' &&
          (s[j + 1] == '#' || s[j + 1] == '%' || s[j + 1] == '-')) {
        out.Append(in, j, j + 2);
        i = j + 2;
        continue;
      }
    }
    out.Append(in, i, i + 1);
    ++i;
  }
  return out;
}

// trim_blocks: /([#%-]})\n/g -> "$1".
Source TrimBlocks(const Source& in) {
  Source out;
  const std::string& s = in.text;
  for (size_t i = 0; i < s.size();) {
    if (i + 2 < s.size() && (s[i] == '#' || s[i] == '%' || s[i] == '-') && s[i + 1] == '}' &&
        s[i + 2] == '\n') {
      out.Append(in, i, i + 2);
      i += 3;
      continue;
    }
    out.Append(in, i, i + 1);
    ++i;
  }
  return out;
}

// Byte length of the JavaScript white-space character that ends just before `pos`, or 0.
size_t JsSpaceBefore(const std::string& s, size_t pos) {
  size_t start = pos;
  while (start > 0 && pos - start < 4) {
    --start;
    if ((static_cast<unsigned char>(s[start]) & 0xC0) != 0x80) break;
  }
  return start < pos && JsSpaceAt(s, start) == pos - start ? pos - start : 0;
}

// Matches "{%-? \s* (end)?generation \s* -?%}" at `q`; returns its end or 0.
size_t MatchGenerationTag(const std::string& s, size_t q, bool* lstrip, bool* rstrip) {
  if (s.compare(q, 2, "{%") != 0) return 0;
  size_t i = q + 2;
  *lstrip = i < s.size() && s[i] == '-';
  if (*lstrip) ++i;
  while (size_t n = JsSpaceAt(s, i)) i += n;
  if (s.compare(i, 3, "end") == 0 && s.compare(i + 3, 10, "generation") == 0) i += 3;
  if (s.compare(i, 10, "generation") != 0) return 0;
  i += 10;
  while (size_t n = JsSpaceAt(s, i)) i += n;
  *rstrip = i < s.size() && s[i] == '-';
  if (*rstrip) ++i;
  if (s.compare(i, 2, "%}") != 0) return 0;
  return i + 2;
}

// /(\s*){%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/gs -> (lstrip ? "" : $1) + (rstrip ? "" : $4).
Source RemoveGenerationTags(const Source& in) {
  Source out;
  const std::string& s = in.text;
  size_t copied = 0;  // bytes of `in` already handled
  for (size_t q = s.find("{%"); q != std::string::npos; q = s.find("{%", q + 1)) {
    if (q < copied) continue;
    bool lstrip = false, rstrip = false;
    const size_t end = MatchGenerationTag(s, q, &lstrip, &rstrip);
    if (end == 0) continue;
    size_t before = q;
    while (before > copied) {
      const size_t n = JsSpaceBefore(s, before);
      if (n == 0 || before - n < copied) break;
      before -= n;
    }
    size_t after = end;
    while (size_t n = JsSpaceAt(s, after)) after += n;
    out.Append(in, copied, before);
    if (!lstrip) out.Append(in, before, q);
    if (!rstrip) out.Append(in, end, after);
    copied = after;
    q = after == 0 ? 0 : after - 1;
  }
  out.Append(in, copied, s.size());
  return out;
}

}  // namespace

void Source::Append(const Source& from, size_t begin, size_t end) {
  text.append(from.text, begin, end - begin);
  line.insert(line.end(), from.line.begin() + begin, from.line.begin() + end);
}

Source Preprocess(std::string_view template_text) {
  Source src;
  src.text = std::string(template_text);
  src.line.resize(src.text.size());
  int line = 1;
  for (size_t i = 0; i < src.text.size(); ++i) {
    src.line[i] = line;
    if (src.text[i] == '\n') ++line;
  }
  if (!src.text.empty() && src.text.back() == '\n') {
    src.text.pop_back();
    src.line.pop_back();
  }
  return RemoveGenerationTags(TrimBlocks(LstripBlocks(src)));
}


}  // namespace strata::chat

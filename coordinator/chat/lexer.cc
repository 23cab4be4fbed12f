#include "coordinator/chat/lexer.h"

#include <array>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "coordinator/chat/js_text.h"
#include "coordinator/chat/preprocess.h"

namespace strata::chat {
namespace {

constexpr std::array<std::pair<std::string_view, TokenType>, 29> kOperators = {{
    {"{%", TokenType::kOpenStatement},  {"%}", TokenType::kCloseStatement},
    {"{{", TokenType::kOpenExpression}, {"}}", TokenType::kCloseExpression},
    {"(", TokenType::kOpenParen},       {")", TokenType::kCloseParen},
    {"{", TokenType::kOpenBrace},       {"}", TokenType::kCloseBrace},
    {"[", TokenType::kOpenBracket},     {"]", TokenType::kCloseBracket},
    {",", TokenType::kComma},           {".", TokenType::kDot},
    {":", TokenType::kColon},           {"|", TokenType::kPipe},
    {"<=", TokenType::kComparison},     {">=", TokenType::kComparison},
    {"==", TokenType::kComparison},     {"!=", TokenType::kComparison},
    {"<", TokenType::kComparison},      {">", TokenType::kComparison},
    {"+", TokenType::kAdditive},        {"-", TokenType::kAdditive},
    {"~", TokenType::kAdditive},        {"**", TokenType::kPower},
    {"*", TokenType::kMultiplicative},  {"//", TokenType::kMultiplicative},
    {"/", TokenType::kMultiplicative},  {"%", TokenType::kMultiplicative},
    {"=", TokenType::kEquals},
}};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsWordChar(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The scanning loop of jinja-js's tokenize(), over preprocessed text.
class Scanner {
 public:
  explicit Scanner(Source src) : src_(std::move(src)), s_(src_.text) {}

  absl::StatusOr<std::vector<Token>> Run() {
    while (pos_ < s_.size()) STRATA_RETURN_IF_ERROR(Step());
    return std::move(tokens_);
  }

 private:
  int Line() const { return src_.line.empty() ? 1 : src_.line[std::min(pos_, s_.size() - 1)]; }

  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("line ", Line(), ": ",
                                                   absl::string_view(what.data(), what.size())));
  }

  void Push(TokenType type, std::string value, int line) {
    tokens_.push_back(Token{type, std::move(value), line});
  }

  bool LastIs(TokenType type) const { return !tokens_.empty() && tokens_.back().type == type; }

  bool At(std::string_view seq) const { return s_.compare(pos_, seq.size(), seq) == 0; }

  // "{%-" / "{{-" / "{#-": trims the trailing white space of the previous text token.
  void StripTrailingWhitespace() {
    if (!LastIs(TokenType::kText)) return;
    tokens_.back().value = JsTrim(tokens_.back().value, false, true);
    if (tokens_.back().value.empty()) tokens_.pop_back();
  }

  void SkipWhitespace() {
    while (size_t n = JsSpaceAt(s_, pos_)) pos_ += n;
  }

  // consumeWhile(): like jinja-js, running into the end of input while consuming is an error.
  template <typename Pred>
  absl::StatusOr<std::string> ConsumeWhile(Pred pred) {
    std::string out;
    while (pos_ < s_.size() && pred(pos_)) {
      out.push_back(s_[pos_++]);
      if (pos_ >= s_.size()) return Error("Unexpected end of input");
    }
    return out;
  }

  absl::StatusOr<std::string> ConsumeDigits() {
    return ConsumeWhile([this](size_t i) { return IsDigit(s_[i]); });
  }

  absl::Status Step() {
    const bool outside = tokens_.empty() || LastIs(TokenType::kCloseStatement) ||
                         LastIs(TokenType::kCloseExpression) || LastIs(TokenType::kComment);
    if (outside) {
      const int line = Line();
      size_t end = pos_;
      while (end < s_.size() && !(s_[end] == '{' && end + 1 < s_.size() &&
                                  (s_[end + 1] == '%' || s_[end + 1] == '{' || s_[end + 1] == '#'))) {
        ++end;
      }
      if (end > pos_) {
        Push(TokenType::kText, s_.substr(pos_, end - pos_), line);
        pos_ = end;
        return absl::OkStatus();
      }
    }
    if (At("{#")) return Comment();
    if (At("{%-") || At("{{-")) {
      StripTrailingWhitespace();
      Push(At("{%-") ? TokenType::kOpenStatement : TokenType::kOpenExpression,
           At("{%-") ? "{%" : "{{", Line());
      if (At("{{-")) depth_ = 0;
      pos_ += 3;
      return absl::OkStatus();
    }
    STRATA_RETURN_IF_ERROR(
        ConsumeWhile([this](size_t i) { return JsSpaceAt(s_, i) > 0; }).status());
    if (pos_ >= s_.size()) return absl::OkStatus();
    if (At("-%}") || At("-}}")) {
      Push(At("-%}") ? TokenType::kCloseStatement : TokenType::kCloseExpression,
           At("-%}") ? "%}" : "}}", Line());
      pos_ += 3;
      SkipWhitespace();
      return absl::OkStatus();
    }
    return Operand();
  }

  absl::Status Comment() {
    const int line = Line();
    pos_ += 2;
    const bool strip_before = pos_ < s_.size() && s_[pos_] == '-';
    if (strip_before) ++pos_;
    std::string comment;
    while (!At("#}")) {
      if (pos_ + 2 >= s_.size()) return Error("Missing end of comment tag");
      comment.push_back(s_[pos_++]);
    }
    const bool strip_after = !comment.empty() && comment.back() == '-';
    if (strip_after) comment.pop_back();
    if (strip_before) StripTrailingWhitespace();
    Push(TokenType::kComment, std::move(comment), line);
    pos_ += 2;
    if (strip_after) SkipWhitespace();
    return absl::OkStatus();
  }

  absl::Status Operand() {
    const char c = s_[pos_];
    const int line = Line();
    if (c == '-' || c == '+') {
      if (tokens_.empty() || LastIs(TokenType::kText)) {
        return Error(absl::StrCat("Unexpected character: ", std::string(1, c)));
      }
      const TokenType last = tokens_.back().type;
      const bool binary = last == TokenType::kIdentifier || last == TokenType::kNumber ||
                          last == TokenType::kString || last == TokenType::kCloseParen ||
                          last == TokenType::kCloseBracket;
      if (!binary) {
        ++pos_;
        STRATA_ASSIGN_OR_RETURN(std::string num, ConsumeDigits());
        if (!num.empty() && At(".") && pos_ + 1 < s_.size() && IsDigit(s_[pos_ + 1])) {
          ++pos_;
          STRATA_ASSIGN_OR_RETURN(std::string frac, ConsumeDigits());
          num += "." + frac;
        }
        Push(num.empty() ? TokenType::kUnary : TokenType::kNumber, std::string(1, c) + num, line);
        return absl::OkStatus();
      }
    }
    for (const auto& [seq, type] : kOperators) {
      if (seq == "}}" && depth_ > 0) continue;
      if (!At(seq)) continue;
      Push(type, std::string(seq), line);
      if (type == TokenType::kOpenExpression) depth_ = 0;
      if (type == TokenType::kOpenBrace) ++depth_;
      if (type == TokenType::kCloseBrace) --depth_;
      pos_ += seq.size();
      return absl::OkStatus();
    }
    if (c == '\'' || c == '"') return StringLiteral(c, line);
    if (IsDigit(c)) {
      STRATA_ASSIGN_OR_RETURN(std::string num, ConsumeDigits());
      if (!LastIs(TokenType::kDot) && At(".") && pos_ + 1 < s_.size() && IsDigit(s_[pos_ + 1])) {
        ++pos_;
        STRATA_ASSIGN_OR_RETURN(std::string frac, ConsumeDigits());
        num += "." + frac;
      }
      Push(TokenType::kNumber, std::move(num), line);
      return absl::OkStatus();
    }
    if (IsWordChar(c)) {
      STRATA_ASSIGN_OR_RETURN(std::string word,
                              ConsumeWhile([this](size_t i) { return IsWordChar(s_[i]); }));
      Push(TokenType::kIdentifier, std::move(word), line);
      return absl::OkStatus();
    }
    size_t next = pos_;
    std::string ch;
    AppendCodePoint(NextCodePoint(s_, &next), &ch);
    return Error(absl::StrCat("Unexpected character: ", ch));
  }

  // A quoted string; escapes as jinja-js reads them.
  absl::Status StringLiteral(char quote, int line) {
    ++pos_;
    std::u16string pending;  // \u escapes, so that surrogate pairs combine
    std::string out;
    auto flush = [&] {
      out += Utf16ToUtf8(pending);
      pending.clear();
    };
    while (pos_ < s_.size() && s_[pos_] != quote) {
      if (s_[pos_] == '\\') {
        if (++pos_ >= s_.size()) return Error("Unexpected end of input");
        const char e = s_[pos_++];
        if (e == 'x' || e == 'u') {
          const size_t len = e == 'x' ? 2 : 4;
          uint32_t cp = 0;
          for (size_t k = 0; k < len; ++k) {
            const int d = pos_ + k < s_.size() ? HexDigit(s_[pos_ + k]) : -1;
            if (d < 0) return Error("Invalid hexadecimal escape sequence");
            cp = cp * 16 + d;
          }
          pos_ += len;
          pending.push_back(static_cast<char16_t>(cp));
          continue;
        }
        flush();
        static constexpr std::string_view kFrom = "ntrbfv'\"\\", kTo = "\n\t\r\b\f\v'\"\\";
        const size_t k = kFrom.find(e);
        if (k == std::string_view::npos) {
          return Error(absl::StrCat("Unexpected escaped character: ", std::string(1, e)));
        }
        out.push_back(kTo[k]);
        continue;
      }
      flush();
      out.push_back(s_[pos_++]);
      if (pos_ >= s_.size()) return Error("Unexpected end of input");
    }
    if (pos_ >= s_.size()) return Error("Unexpected end of input");
    flush();
    ++pos_;
    Push(TokenType::kString, std::move(out), line);
    return absl::OkStatus();
  }

  Source src_;
  const std::string& s_;
  size_t pos_ = 0;
  int depth_ = 0;  // curly brackets open inside {{ }}
  std::vector<Token> tokens_;
};

}  // namespace

const char* TokenTypeName(TokenType type) {
  static constexpr const char* kNames[] = {
      "Text", "NumericLiteral", "StringLiteral", "Identifier", "Equals", "OpenParen",
      "CloseParen", "OpenStatement", "CloseStatement", "OpenExpression", "CloseExpression",
      "OpenSquareBracket", "CloseSquareBracket", "OpenCurlyBracket", "CloseCurlyBracket",
      "Comma", "Dot", "Colon", "Pipe", "AdditiveBinaryOperator",
      "MultiplicativeBinaryOperator", "ExponentiationBinaryOperator",
      "ComparisonBinaryOperator", "UnaryOperator", "Comment"};
  return kNames[static_cast<int>(type)];
}

absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source) {
  return Scanner(Preprocess(source)).Run();
}

}  // namespace strata::chat

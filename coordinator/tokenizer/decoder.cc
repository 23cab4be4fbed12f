#include "coordinator/tokenizer/decoder.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/strings.h"
#include "common/status.h"
#include "coordinator/tokenizer/byte_level.h"
#include "coordinator/tokenizer/json_util.h"
#include "coordinator/tokenizer/utf8.h"

namespace strata::tokenizer {
namespace {


// Byte of a "<0xAB>" token, or -1.
int ByteTokenValue(std::string_view token) {
  if (token.size() != 6 || !token.starts_with("<0x") || token.back() != '>') return -1;
  int value = 0;
  for (char c : token.substr(3, 2)) {
    value *= 16;
    if (c >= '0' && c <= '9')
      value += c - '0';
    else if (c >= 'a' && c <= 'f')
      value += c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      value += c - 'A' + 10;
    else
      return -1;
  }
  return value;
}

}  // namespace

absl::StatusOr<Decoder> Decoder::Parse(const boost::json::value& json, std::string_view source) {
  Decoder decoder;
  STRATA_RETURN_IF_ERROR(ForEachComponent(
      json, absl::StrCat(Sv(source), ": decoder"), "decoders",
      [&](const boost::json::object& obj, const std::string& type, const std::string& where) {
        return decoder.ParseStep(obj, type, where);
      }));
  return decoder;
}

Decoder Decoder::ByteLevel() {
  Decoder decoder;
  Step step;
  step.kind = Kind::kByteLevel;
  decoder.steps_.push_back(std::move(step));
  return decoder;
}

absl::Status Decoder::ParseStep(const boost::json::object& obj, const std::string& type,
                                const std::string& where) {
  Step step;
  if (type == "ByteLevel") {
    step.kind = Kind::kByteLevel;
  } else if (type == "Metaspace") {
    step.kind = Kind::kMetaspace;
    step.content = std::string(JsonString(obj, "replacement").value_or("\xE2\x96\x81"));
    const std::string scheme(JsonString(obj, "prepend_scheme").value_or(""));
    step.prepend = scheme.empty() ? JsonBool(obj, "add_prefix_space", true) : scheme != "never";
  } else if (type == "ByteFallback") {
    step.kind = Kind::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = Kind::kFuse;
  } else if (type == "Strip") {
    step.kind = Kind::kStrip;
    step.content = std::string(JsonString(obj, "content").value_or(" "));
    const auto count = [&](const char* key) {
      const boost::json::value* v = obj.if_contains(key);
      return v != nullptr && v->is_int64() ? static_cast<int>(v->as_int64()) : 0;
    };
    step.start = count("start");
    step.stop = count("stop");
  } else if (type == "Replace") {
    step.kind = Kind::kReplace;
    const boost::json::value* pattern = obj.if_contains("pattern");
    if (pattern == nullptr) return absl::InvalidArgumentError(where + " Replace has no pattern");
    STRATA_ASSIGN_OR_RETURN(step.pattern, ReplacePattern::Parse(*pattern, where));
    step.content = std::string(JsonString(obj, "content").value_or(""));
  } else {
    return absl::UnimplementedError(
        absl::StrCat(where, " type '", type,
                     "' is not supported (ByteLevel, Metaspace, ByteFallback, Fuse, "
                     "Strip, Replace, Sequence)"));
  }
  steps_.push_back(std::move(step));
  return absl::OkStatus();
}

std::string Decoder::Decode(std::vector<std::string> tokens) const {
  for (const Step& step : steps_) Apply(step, &tokens);
  std::string joined = absl::StrJoin(tokens, "");
  if (IsValidUtf8(joined)) return joined;
  std::string out;
  AppendUtf8Lossy(joined, &out);
  return out;
}

void Decoder::Apply(const Step& step, std::vector<std::string>* tokens) {
  std::vector<std::string>& t = *tokens;
  switch (step.kind) {
    case Kind::kByteLevel: {
      std::string bytes;
      for (const std::string& token : t) {
        std::optional<std::string> raw = ByteLevelToBytes(token);
        bytes.append(raw ? *raw : token);
      }
      std::string text;
      AppendUtf8Lossy(bytes, &text);
      t = {std::move(text)};
      return;
    }
    case Kind::kMetaspace:
      for (size_t i = 0; i < t.size(); ++i) {
        t[i] = ReplacePattern{step.content, nullptr}.ReplaceAll(t[i], " ");
        if (i == 0 && step.prepend && t[i].starts_with(' ')) t[i].erase(0, 1);
      }
      return;
    case Kind::kByteFallback: {
      std::vector<std::string> out;
      std::string bytes;
      const auto flush = [&] {
        if (bytes.empty()) return;
        std::string text;
        AppendUtf8Lossy(bytes, &text);
        out.push_back(std::move(text));
        bytes.clear();
      };
      for (std::string& token : t) {
        const int byte = ByteTokenValue(token);
        if (byte >= 0) {
          bytes.push_back(static_cast<char>(byte));
        } else {
          flush();
          out.push_back(std::move(token));
        }
      }
      flush();
      t = std::move(out);
      return;
    }
    case Kind::kFuse:
      t = {absl::StrJoin(t, "")};
      return;
    case Kind::kStrip:
      for (std::string& token : t) {
        std::string_view s = token;
        for (int i = 0; i < step.start && s.starts_with(step.content); ++i) {
          s.remove_prefix(step.content.size());
        }
        for (int i = 0; i < step.stop && s.ends_with(step.content); ++i) {
          s.remove_suffix(step.content.size());
        }
        token = std::string(s);
      }
      return;
    case Kind::kReplace:
      for (std::string& token : t) token = step.pattern.ReplaceAll(token, step.content);
      return;
  }
}

}  // namespace strata::tokenizer

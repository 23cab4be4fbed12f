// The pre-tokenizer table below holds llama.cpp's regex lists (llama-vocab.cpp,
// llm_tokenizer_bpe) keyed by the names convert_hf_to_gguf.py writes to tokenizer.ggml.pre.
#include "coordinator/tokenizer/gguf_bpe_vocab.h"

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/formats/gguf.h"
#include "common/status.h"
#include "coordinator/tokenizer/bpe_tokenizer.h"

namespace strata::tokenizer {
namespace {


constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|)"
    R"(\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kCjk = R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
constexpr const char* kDeepseekLlmPunctuation =
    R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";
// Cased letters (Lu, Ll, Lt) of DeepSeek's tokenizer.json, written as escapes: several of them
// (U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126, U+212A) are singletons that Unicode normalization of
// this source file would silently replace.
constexpr const char* kDeepseekLlmLetters =
    "\\s?["
    "A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
    "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}"
    "\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}"
    "\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"
    "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}"
    "\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}"
    "\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}"
    "\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}"
    "\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}"
    "\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}"
    "\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}"
    "\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}"
    "\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}"
    "\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"
    "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"
    "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}"
    "\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}"
    "]+";

struct PreEntry {
  std::vector<std::string_view> names;
  GgufPreTokenizer pre;
};

const std::vector<PreEntry>& PreTable() {
  static const std::vector<PreEntry> table = {
      {{"default"},
       {{R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"}, false, false}},
      {{"llama3", "llama-v3", "llama-bpe", "dbrx", "smaug-bpe"}, {{kLlama3}, true, true}},
      {{"qwen2", "qwen2.5", "qwen-2.5", "deepseek-r1-qwen"}, {{kQwen2}, false, false}},
      {{"deepseek-llm"},
       {{"[\r\n]", kDeepseekLlmLetters, kDeepseekLlmPunctuation, "\\s+$", kCjk, R"(\p{N}+)"},
        false,
        true}},
      {{"deepseek-coder"},
       {{"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kCjk, R"(\p{N})"}, false, true}},
      {{"falcon"}, {{R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"}, false, false}},
      {{"gpt-2", "mpt", "olmo", "phi-2", "roberta-bpe", "jina-es", "jina-de"},
       {{kGpt2}, false, false}},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone"},
       {{R"(\p{N})", kGpt2}, false, false}},
  };
  return table;
}

absl::StatusOr<int32_t> TokenId(const GgufFile& gguf, std::string_view key) {
  STRATA_ASSIGN_OR_RETURN(std::optional<int64_t> value, gguf.GetInt(key));
  if (!value || *value == -1 || *value == 0xFFFFFFFFLL) return -1;
  if (*value < 0 || *value > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat(gguf.path(), ": ", Sv(key), " = ", *value, " is not a token id"));
  }
  return static_cast<int32_t>(*value);
}

// tokenizer.ggml.token_type, or all normal (1) when absent.
absl::StatusOr<std::vector<int64_t>> TokenTypes(const GgufFile& gguf, size_t n) {
  absl::StatusOr<std::optional<std::vector<int64_t>>> types =
      gguf.GetIntArray("tokenizer.ggml.token_type");
  if (!types.ok()) return types.status();
  if (!types->has_value()) return std::vector<int64_t>(n, 1);
  return std::move(**types);
}

}  // namespace

absl::StatusOr<GgufPreTokenizer> GgufPreTokenizerFor(std::string_view name,
                                                     std::string_view source) {
  const std::string_view key = name.empty() ? "default" : name;
  for (const PreEntry& entry : PreTable()) {
    for (std::string_view n : entry.names) {
      if (n == key) return entry.pre;
    }
  }
  return absl::UnimplementedError(absl::StrCat(Sv(source), ": GGUF pre-tokenizer '", Sv(key),
                                               "' (tokenizer.ggml.pre) is not supported "
                                               "yet"));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadGgufBpeTokenizer(const GgufFile& gguf) {
  const std::string& path = gguf.path();
  STRATA_ASSIGN_OR_RETURN(std::optional<std::string> pre_name,
                          gguf.GetString("tokenizer.ggml.pre"));
  STRATA_ASSIGN_OR_RETURN(GgufPreTokenizer pre, GgufPreTokenizerFor(pre_name.value_or(""), path));
  STRATA_ASSIGN_OR_RETURN(auto tokens, gguf.GetStringArray("tokenizer.ggml.tokens"));
  STRATA_ASSIGN_OR_RETURN(auto merges, gguf.GetStringArray("tokenizer.ggml.merges"));
  if (!tokens || !merges) {
    return absl::NotFoundError(
        absl::StrCat(path, ": gpt2 vocabulary needs tokenizer.ggml.tokens and .merges"));
  }
  STRATA_ASSIGN_OR_RETURN(const std::vector<int64_t> types, TokenTypes(gguf, tokens->size()));
  if (types.size() != tokens->size()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tokenizer.ggml.token_type has ",
                                                   types.size(), " entries, tokens ",
                                                   tokens->size()));
  }
  BpeTokenizerParts parts;
  parts.model.byte_level = true;
  parts.model.ignore_merges = pre.ignore_merges;
  for (size_t i = 0; i < tokens->size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    if (types[i] == 3 || types[i] == 4) {  // control, user-defined
      AddedToken& token = parts.added_tokens.emplace_back();
      token.content = (*tokens)[i];
      token.id = id;
      token.special = types[i] == 3;
    }
    parts.model.vocab.emplace_back(std::move((*tokens)[i]), id);
  }
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    const std::string& merge = (*merges)[rank];
    const size_t space = merge.find(' ', 1);
    if (space == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tokenizer.ggml.merges[", rank, "] '", merge, "' is not 'a b'"));
    }
    parts.model.merges.emplace_back(merge.substr(0, space), merge.substr(space + 1));
  }
  STRATA_ASSIGN_OR_RETURN(parts.pre_tokenizer, PreTokenizer::FromRegexSequence(pre.regexes, path));
  parts.decoder = Decoder::ByteLevel();
  STRATA_ASSIGN_OR_RETURN(parts.bos_id, TokenId(gguf, "tokenizer.ggml.bos_token_id"));
  STRATA_ASSIGN_OR_RETURN(const int32_t eos_id, TokenId(gguf, "tokenizer.ggml.eos_token_id"));
  for (std::string_view key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                               "tokenizer.ggml.eom_token_id"}) {
    STRATA_ASSIGN_OR_RETURN(const int32_t id, TokenId(gguf, key));
    if (id >= 0) parts.eos_ids.push_back(id);
  }
  STRATA_ASSIGN_OR_RETURN(std::optional<bool> add_bos,
                          gguf.GetBool("tokenizer.ggml.add_bos_token"));
  STRATA_ASSIGN_OR_RETURN(std::optional<bool> add_eos,
                          gguf.GetBool("tokenizer.ggml.add_eos_token"));
  if (add_bos.value_or(pre.add_bos) && parts.bos_id >= 0) parts.prefix_ids.push_back(parts.bos_id);
  if (add_eos.value_or(false) && eos_id >= 0) parts.suffix_ids.push_back(eos_id);
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<BpeTokenizer> tokenizer,
                          BpeTokenizer::Create(std::move(parts), path));
  return std::unique_ptr<Tokenizer>(std::move(tokenizer));
}

}  // namespace strata::tokenizer

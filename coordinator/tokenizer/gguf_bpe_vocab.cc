// The pre-tokenizer table below holds llama.cpp's regex lists (llama-vocab.cpp,
// llm_tokenizer_bpe) keyed by the names convert_hf_to_gguf.py writes to tokenizer.ggml.pre.
#include "coordinator/tokenizer/gguf_bpe_vocab.h"

#include "absl/strings/str_cat.h"
#include "common/formats/absl_compat.h"
#include "common/formats/gguf.h"
#include "common/status.h"
#include "coordinator/tokenizer/bpe_tokenizer.h"

namespace strata::tokenizer {
namespace {

using formats_internal::Sv;

constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|)"
    R"(\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kCjk = "[一-龥ࠀ-一가-퟿]+";
constexpr const char* kDeepseekLlmLetters =
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅ"
    "ὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎ"
    "ꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+";

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
       {{"[\r\n]", kDeepseekLlmLetters, "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", kCjk,
         R"(\p{N}+)"},
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

}  // namespace

absl::StatusOr<GgufPreTokenizer> GgufPreTokenizerFor(std::string_view name,
                                                     std::string_view source) {
  const std::string_view key = name.empty() ? "default" : name;
  for (const PreEntry& entry : PreTable()) {
    for (std::string_view n : entry.names) {
      if (n == key) return entry.pre;
    }
  }
  return absl::UnimplementedError(absl::StrCat(
      Sv(source), ": GGUF pre-tokenizer '", Sv(key), "' (tokenizer.ggml.pre) is not supported "
      "yet"));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadGgufBpeTokenizer(const GgufFile& gguf) {
  const std::string& path = gguf.path();
  STRATA_ASSIGN_OR_RETURN(std::optional<std::string> pre_name, gguf.GetString("tokenizer.ggml.pre"));
  STRATA_ASSIGN_OR_RETURN(GgufPreTokenizer pre, GgufPreTokenizerFor(pre_name.value_or(""), path));
  STRATA_ASSIGN_OR_RETURN(auto tokens, gguf.GetStringArray("tokenizer.ggml.tokens"));
  STRATA_ASSIGN_OR_RETURN(auto merges, gguf.GetStringArray("tokenizer.ggml.merges"));
  STRATA_ASSIGN_OR_RETURN(auto types, gguf.GetIntArray("tokenizer.ggml.token_type"));
  if (!tokens || !merges) {
    return absl::NotFoundError(
        absl::StrCat(path, ": gpt2 vocabulary needs tokenizer.ggml.tokens and .merges"));
  }
  if (types && types->size() != tokens->size()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tokenizer.ggml.token_type has ",
                                                   types->size(), " entries, tokens ",
                                                   tokens->size()));
  }
  BpeTokenizerParts parts;
  parts.model.byte_level = true;
  parts.model.ignore_merges = pre.ignore_merges;
  for (size_t i = 0; i < tokens->size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    const int64_t type = types ? (*types)[i] : 1;
    if (type == 3 || type == 4) {  // control, user-defined
      parts.added_tokens.push_back(
          AddedToken{.content = (*tokens)[i], .id = id, .special = type == 3});
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
  STRATA_ASSIGN_OR_RETURN(std::optional<bool> add_bos, gguf.GetBool("tokenizer.ggml.add_bos_token"));
  STRATA_ASSIGN_OR_RETURN(std::optional<bool> add_eos, gguf.GetBool("tokenizer.ggml.add_eos_token"));
  if (add_bos.value_or(pre.add_bos) && parts.bos_id >= 0) parts.prefix_ids.push_back(parts.bos_id);
  if (add_eos.value_or(false) && eos_id >= 0) parts.suffix_ids.push_back(eos_id);
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<BpeTokenizer> tokenizer,
                          BpeTokenizer::Create(std::move(parts), path));
  return std::unique_ptr<Tokenizer>(std::move(tokenizer));
}

}  // namespace strata::tokenizer

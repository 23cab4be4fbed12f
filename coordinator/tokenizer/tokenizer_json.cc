// tokenizer.json -> BpeTokenizerParts. The file's sections map one to one onto the parts:
// "model" (BPE vocabulary, merges, options), "normalizer", "pre_tokenizer", "added_tokens",
// "post_processor" (the ids add_special puts around the text) and "decoder".
#include "coordinator/tokenizer/tokenizer_json.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/status.h"
#include "coordinator/tokenizer/bpe_tokenizer.h"
#include "coordinator/tokenizer/json_util.h"

namespace strata::tokenizer {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

const json::value& Field(const json::object& obj, std::string_view key) {
  static const json::value kNull;
  const json::value* v = obj.if_contains(json::string_view(key.data(), key.size()));
  return v != nullptr ? *v : kNull;
}

absl::Status ParseModel(const json::object& root, const std::string& source, BpeModelSpec* spec) {
  const json::value& model_value = Field(root, "model");
  if (!model_value.is_object()) return absl::InvalidArgumentError(source + ": no 'model' object");
  const json::object& model = model_value.as_object();
  const std::string type(JsonString(model, "type").value_or("BPE"));
  if (type != "BPE") {
    return absl::UnimplementedError(
        absl::StrCat(source, ": model type '", type, "' is not supported yet (only BPE)"));
  }
  if (const json::value& dropout = Field(model, "dropout");
      dropout.is_double() && dropout.as_double() > 0) {
    return absl::UnimplementedError(source + ": BPE dropout is not supported");
  }
  const json::value& vocab = Field(model, "vocab");
  if (!vocab.is_object()) return absl::InvalidArgumentError(source + ": model has no vocab object");
  spec->vocab.reserve(vocab.as_object().size());
  for (const auto& [token, id] : vocab.as_object()) {
    if (!id.is_int64()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": vocab entry '", std::string(token), "' has no integer id"));
    }
    spec->vocab.emplace_back(std::string(token), static_cast<int32_t>(id.as_int64()));
  }
  const json::value& merges = Field(model, "merges");
  if (merges.is_array()) {
    spec->merges.reserve(merges.as_array().size());
    for (const json::value& merge : merges.as_array()) {
      if (auto line = JsonString(&merge)) {  // "a b"
        const size_t space = line->find(' ', 1);
        if (space == std::string_view::npos) {
          return absl::InvalidArgumentError(
              absl::StrCat(source, ": merge '", Sv(*line), "' is not 'left right'"));
        }
        spec->merges.emplace_back(line->substr(0, space), line->substr(space + 1));
      } else if (merge.is_array() && merge.as_array().size() == 2 &&
                 merge.as_array()[0].is_string() && merge.as_array()[1].is_string()) {
        spec->merges.emplace_back(*JsonString(&merge.as_array()[0]),
                                  *JsonString(&merge.as_array()[1]));
      } else {
        return absl::InvalidArgumentError(source + ": a merge is neither \"a b\" nor [a, b]");
      }
    }
  }
  if (auto unk = JsonString(model, "unk_token")) spec->unk_token = std::string(*unk);
  spec->continuing_subword_prefix = JsonString(model, "continuing_subword_prefix").value_or("");
  spec->end_of_word_suffix = JsonString(model, "end_of_word_suffix").value_or("");
  spec->fuse_unk = JsonBool(model, "fuse_unk", false);
  spec->byte_fallback = JsonBool(model, "byte_fallback", false);
  spec->ignore_merges = JsonBool(model, "ignore_merges", false);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<AddedToken>> ParseAddedTokens(const json::object& root,
                                                         const std::string& source) {
  std::vector<AddedToken> tokens;
  const json::value& list = Field(root, "added_tokens");
  if (list.is_null()) return tokens;
  if (!list.is_array()) return absl::InvalidArgumentError(source + ": added_tokens is not a list");
  for (const json::value& item : list.as_array()) {
    if (!item.is_object() || !Field(item.as_object(), "id").is_int64() ||
        !JsonString(item.as_object(), "content")) {
      return absl::InvalidArgumentError(source + ": an added token has no id or content");
    }
    const json::object& obj = item.as_object();
    AddedToken token;
    token.content = std::string(*JsonString(obj, "content"));
    token.id = static_cast<int32_t>(Field(obj, "id").as_int64());
    token.special = JsonBool(obj, "special", false);
    token.lstrip = JsonBool(obj, "lstrip", false);
    token.rstrip = JsonBool(obj, "rstrip", false);
    token.single_word = JsonBool(obj, "single_word", false);
    token.normalized = JsonBool(obj, "normalized", !token.special);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// Looks a token up by content: added tokens first, then the vocabulary.
int32_t FindToken(const BpeTokenizerParts& parts, std::string_view content) {
  for (const AddedToken& token : parts.added_tokens) {
    if (token.content == content) return token.id;
  }
  for (const auto& [token, id] : parts.model.vocab) {
    if (token == content) return id;
  }
  return -1;
}

// Adds the ids a post-processor puts around the text. Processors of a Sequence wrap the result
// of the ones before them.
absl::Status ParsePostProcessor(const json::value& value, const std::string& source,
                                BpeTokenizerParts* parts) {
  if (value.is_null()) return absl::OkStatus();
  const std::string where = source + ": post_processor";
  if (!value.is_object()) return absl::InvalidArgumentError(where + " is not an object");
  const json::object& obj = value.as_object();
  const std::string type(JsonString(obj, "type").value_or(""));
  std::vector<int32_t> prefix, suffix;
  if (type == "Sequence") {
    const json::value& list = Field(obj, "processors");
    if (!list.is_array()) return absl::InvalidArgumentError(where + " has no 'processors' list");
    for (const json::value& item : list.as_array()) {
      STRATA_RETURN_IF_ERROR(ParsePostProcessor(item, source, parts));
    }
    return absl::OkStatus();
  } else if (type == "ByteLevel") {
    return absl::OkStatus();  // offsets only
  } else if (type == "TemplateProcessing") {
    const json::value& single = Field(obj, "single");
    const json::value& specials = Field(obj, "special_tokens");
    if (!single.is_array()) return absl::InvalidArgumentError(where + " has no 'single' list");
    bool seen_sequence = false;
    for (const json::value& item : single.as_array()) {
      if (!item.is_object()) continue;
      if (item.as_object().contains("Sequence")) {
        seen_sequence = true;
        continue;
      }
      const json::value& special = Field(item.as_object(), "SpecialToken");
      const std::optional<std::string_view> name =
          special.is_object() ? JsonString(special.as_object(), "id") : std::nullopt;
      const json::value& entry =
          name && specials.is_object() ? Field(specials.as_object(), *name) : json::value();
      if (!entry.is_object() || !Field(entry.as_object(), "ids").is_array()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": special token '", Sv(name.value_or("?")), "' has no ids"));
      }
      for (const json::value& id : Field(entry.as_object(), "ids").as_array()) {
        if (id.is_int64())
          (seen_sequence ? suffix : prefix).push_back(static_cast<int32_t>(id.as_int64()));
      }
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    for (const auto& [key, out] : {std::pair{"cls", &prefix}, std::pair{"sep", &suffix}}) {
      const json::value& pair = Field(obj, key);
      if (!pair.is_array() || pair.as_array().size() != 2 || !pair.as_array()[1].is_int64()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": '", key, "' is not [token, id]"));
      }
      out->push_back(static_cast<int32_t>(pair.as_array()[1].as_int64()));
    }
  } else {
    return absl::UnimplementedError(
        absl::StrCat(where, " type '", type,
                     "' is not supported (TemplateProcessing, RobertaProcessing, "
                     "BertProcessing, ByteLevel, Sequence)"));
  }
  parts->prefix_ids.insert(parts->prefix_ids.begin(), prefix.begin(), prefix.end());
  parts->suffix_ids.insert(parts->suffix_ids.end(), suffix.begin(), suffix.end());
  return absl::OkStatus();
}

// tokenizer_config.json: bos/eos tokens; add_bos_token/add_eos_token for the tokenizer classes
// whose post-processor transformers rebuilds from them (Llama, Gemma, CodeLlama).
void ApplyTokenizerConfig(const json::object& config, BpeTokenizerParts* parts) {
  int32_t eos_id = -1;
  if (auto bos = JsonTokenContent(config, "bos_token")) parts->bos_id = FindToken(*parts, *bos);
  if (auto eos = JsonTokenContent(config, "eos_token")) eos_id = FindToken(*parts, *eos);
  if (eos_id >= 0) parts->eos_ids.push_back(eos_id);
  const std::string cls(JsonString(config, "tokenizer_class").value_or(""));
  const bool rebuilds = cls.starts_with("LlamaTokenizer") || cls.starts_with("GemmaTokenizer") ||
                        cls.starts_with("CodeLlamaTokenizer");
  if (!rebuilds || (!config.contains("add_bos_token") && !config.contains("add_eos_token"))) {
    return;
  }
  parts->prefix_ids.clear();
  parts->suffix_ids.clear();
  if (JsonBool(config, "add_bos_token", true) && parts->bos_id >= 0) {
    parts->prefix_ids.push_back(parts->bos_id);
  }
  if (JsonBool(config, "add_eos_token", false) && eos_id >= 0) parts->suffix_ids.push_back(eos_id);
}

}  // namespace

std::vector<int32_t> GenerationConfigEosIds(const boost::json::object& config, int32_t vocab_size) {
  std::vector<int32_t> ids;
  const json::value& eos = Field(config, "eos_token_id");
  const auto add = [&](const json::value& v) {
    if (v.is_int64() && v.as_int64() >= 0 && v.as_int64() < vocab_size) {
      ids.push_back(static_cast<int32_t>(v.as_int64()));
    }
  };
  if (eos.is_array()) {
    for (const json::value& v : eos.as_array()) add(v);
  } else {
    add(eos);
  }
  return ids;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerJson(const fs::path& dir) {
  const std::string source = (dir / "tokenizer.json").string();
  STRATA_ASSIGN_OR_RETURN(std::optional<json::object> root, ReadJsonObject(dir / "tokenizer.json"));
  if (!root) return absl::NotFoundError(source + ": no such file");
  BpeTokenizerParts parts;
  STRATA_RETURN_IF_ERROR(ParseModel(*root, source, &parts.model));
  STRATA_ASSIGN_OR_RETURN(parts.normalizer, Normalizer::Parse(Field(*root, "normalizer"), source));
  STRATA_ASSIGN_OR_RETURN(parts.pre_tokenizer,
                          PreTokenizer::Parse(Field(*root, "pre_tokenizer"), source));
  parts.model.byte_level = parts.pre_tokenizer.byte_level();
  STRATA_ASSIGN_OR_RETURN(parts.decoder, Decoder::Parse(Field(*root, "decoder"), source));
  STRATA_ASSIGN_OR_RETURN(parts.added_tokens, ParseAddedTokens(*root, source));
  STRATA_RETURN_IF_ERROR(ParsePostProcessor(Field(*root, "post_processor"), source, &parts));
  root.reset();  // the vocabulary now lives in `parts`

  STRATA_ASSIGN_OR_RETURN(auto config, ReadJsonObject(dir / "tokenizer_config.json"));
  if (config) ApplyTokenizerConfig(*config, &parts);
  STRATA_ASSIGN_OR_RETURN(auto generation, ReadJsonObject(dir / "generation_config.json"));
  if (generation) {
    for (int32_t id : GenerationConfigEosIds(*generation, INT32_MAX)) parts.eos_ids.push_back(id);
  }
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<BpeTokenizer> tokenizer,
                          BpeTokenizer::Create(std::move(parts), source));
  return std::unique_ptr<Tokenizer>(std::move(tokenizer));
}

}  // namespace strata::tokenizer

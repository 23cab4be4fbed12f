// LoadTokenizer: decides from what a model ships which Tokenizer to build. For SentencePiece
// models it applies the Hugging Face side files (tokenizer_config.json, generation_config.json)
// on top of the vocabulary's own defaults; tokenizer_json.cc does the same for tokenizer.json.
#include <algorithm>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "common/formats/gguf.h"
#include "common/json.h"
#include "common/status.h"
#include "coordinator/tokenizer/gguf_bpe_vocab.h"
#include "coordinator/tokenizer/json_util.h"
#include "coordinator/tokenizer/spm_tokenizer.h"
#include "coordinator/tokenizer/spm_vocab.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "coordinator/tokenizer/tokenizer_json.h"

namespace strata::tokenizer {
namespace {

namespace fs = std::filesystem;

int32_t FindPiece(const SpmVocab& vocab, std::string_view piece) {
  const auto it = std::find(vocab.pieces.begin(), vocab.pieces.end(), piece);
  return it == vocab.pieces.end() ? -1 : static_cast<int32_t>(it - vocab.pieces.begin());
}

// Reads tokenizer_config.json's added_tokens_decoder ({"id": {"content", "special", "lstrip",
// "rstrip", "single_word", "normalized"}}): what transformers adds on top of tokenizer.model.
absl::Status ReadAddedTokens(const boost::json::object& config, const std::string& source,
                             SpmVocab* vocab) {
  const auto* decoder = config.if_contains("added_tokens_decoder");
  if (decoder == nullptr || !decoder->is_object()) return absl::OkStatus();
  for (const auto& [key, value] : decoder->as_object()) {
    int32_t id = -1;
    if (!absl::SimpleAtoi(absl::string_view(key.data(), key.size()), &id) || id < 0 ||
        !value.is_object() ||
        !value.as_object().contains("content") || !value.at("content").is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": added_tokens_decoder entry '", std::string(key),
                       "' needs an id and a content"));
    }
    const boost::json::object& entry = value.as_object();
    AddedToken& t = vocab->added.emplace_back();
    t.id = id;
    t.content = std::string(entry.at("content").as_string());
    auto flag = [&](const char* name) {
      const auto* v = entry.if_contains(name);
      return v != nullptr && v->is_bool() && v->as_bool();
    };
    t.special = flag("special");
    t.lstrip = flag("lstrip");
    t.rstrip = flag("rstrip");
    t.single_word = flag("single_word");
  }
  return absl::OkStatus();
}

// Applies tokenizer_config.json: add_bos_token, add_eos_token, eos_token ("</s>" or
// {"content": "</s>"}), legacy.
void ApplyTokenizerConfig(const boost::json::object& config, SpmVocab* vocab) {
  if (const auto* v = config.if_contains("legacy"); v && v->is_bool()) {
    vocab->prefix_every_segment = v->as_bool();
  }
  if (const auto* v = config.if_contains("add_bos_token"); v && v->is_bool()) {
    vocab->add_bos = v->as_bool();
  }
  if (const auto* v = config.if_contains("add_eos_token"); v && v->is_bool()) {
    vocab->add_eos = v->as_bool();
  }
  if (const auto eos = JsonTokenContent(config, "eos_token")) {
    int32_t id = FindPiece(*vocab, *eos);
    for (const AddedToken& t : vocab->added) {
      if (t.content == *eos) id = t.id;
    }
    if (id >= 0 && id != vocab->eos_id) vocab->extra_eos_ids.push_back(id);
  }
}

// Applies generation_config.json: eos_token_id (an id or a list of ids) all end generation.
void ApplyGenerationConfig(const boost::json::object& config, SpmVocab* vocab) {
  for (int32_t id : GenerationConfigEosIds(config, static_cast<int32_t>(vocab->pieces.size()))) {
    if (id != vocab->eos_id) vocab->extra_eos_ids.push_back(id);
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceFile(const fs::path& model_file) {
  STRATA_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(model_file.string()));
  STRATA_ASSIGN_OR_RETURN(SpmVocab vocab, SpmVocabFromModelProto(bytes, model_file.string()));
  const fs::path dir = model_file.parent_path();
  STRATA_ASSIGN_OR_RETURN(auto tokenizer_config, ReadJsonObject(dir / "tokenizer_config.json"));
  if (tokenizer_config) {
    STRATA_RETURN_IF_ERROR(ReadAddedTokens(*tokenizer_config, model_file.string(), &vocab));
    ApplyTokenizerConfig(*tokenizer_config, &vocab);
  }
  STRATA_ASSIGN_OR_RETURN(auto generation_config, ReadJsonObject(dir / "generation_config.json"));
  if (generation_config) ApplyGenerationConfig(*generation_config, &vocab);
  return SpmTokenizer::Create(std::move(vocab), model_file.string());
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadGguf(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> gguf, GgufFile::Open(path));
  STRATA_ASSIGN_OR_RETURN(std::optional<std::string> model, gguf->GetString("tokenizer.ggml.model"));
  if (model && *model == "gpt2") return LoadGgufBpeTokenizer(*gguf);
  STRATA_ASSIGN_OR_RETURN(SpmVocab vocab, SpmVocabFromGguf(*gguf));
  return SpmTokenizer::Create(std::move(vocab), path);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadModelDirectory(const fs::path& dir) {
  // transformers loads the fast tokenizer (tokenizer.json) when a model ships one.
  if (fs::exists(dir / "tokenizer.json")) return LoadTokenizerJson(dir);
  if (fs::exists(dir / "tokenizer.model")) return LoadSentencePieceFile(dir / "tokenizer.model");
  return absl::NotFoundError(absl::StrCat(
      dir.string(), ": no tokenizer found (expected tokenizer.model or tokenizer.json)"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& model_path) {
  std::error_code ec;
  const fs::path path(model_path);
  if (fs::is_directory(path, ec)) return LoadModelDirectory(path);
  if (!fs::is_regular_file(path, ec)) {
    return absl::NotFoundError(
        absl::StrCat(model_path, ": no such model directory or file (.gguf, .model)"));
  }
  if (absl::EndsWith(model_path, ".gguf")) return LoadGguf(model_path);
  if (absl::EndsWith(model_path, ".model")) return LoadSentencePieceFile(path);
  return absl::InvalidArgumentError(absl::StrCat(
      model_path, ": not a model directory, .gguf file or SentencePiece .model file"));
}

}  // namespace strata::tokenizer

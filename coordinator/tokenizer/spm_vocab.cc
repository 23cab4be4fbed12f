// SpmVocab from its two sources. A SentencePiece model file is a serialized ModelProto, parsed
// with Strata's wire-compatible copy of the schema (proto/strata/spm/sentencepiece_model.proto).
// GGUF "llama" vocabularies are the same data spread over tokenizer.ggml.* keys; defaults follow
// llama.cpp (add_bos true, add_space_prefix true, never collapse whitespace, byte fallback on).
#include "coordinator/tokenizer/spm_vocab.h"

#include "absl/strings/str_cat.h"
#include "common/formats/gguf.h"
#include "common/status.h"
#include "strata/spm/sentencepiece_model.pb.h"

namespace strata::tokenizer {
namespace {

absl::StatusOr<PieceType> CheckedPieceType(int64_t type, size_t index, const std::string& source) {
  if (type < static_cast<int64_t>(PieceType::kNormal) ||
      type > static_cast<int64_t>(PieceType::kByte)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": piece ", index, " has type ", type, ", expected 1..6"));
  }
  return static_cast<PieceType>(type);
}

// GGUF stores ids as uint32 with 0xFFFFFFFF (or -1) for "none".
absl::StatusOr<int32_t> GgufTokenId(const GgufFile& gguf, std::string_view key, int32_t absent) {
  STRATA_ASSIGN_OR_RETURN(std::optional<int64_t> value, gguf.GetInt(key));
  if (!value || *value == -1 || *value == 0xFFFFFFFFLL) return absent;
  if (*value < 0 || *value > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat(gguf.path(), ": ", std::string(key), " = ", *value, " is not a token id"));
  }
  return static_cast<int32_t>(*value);
}

// An optional GGUF array, or `n` copies of `fill` when the key is absent.
template <typename T>
absl::StatusOr<std::vector<T>> ArrayOr(absl::StatusOr<std::optional<std::vector<T>>> array,
                                       size_t n, T fill) {
  if (!array.ok()) return array.status();
  if (!array->has_value()) return std::vector<T>(n, fill);
  return std::move(**array);
}

absl::StatusOr<bool> GgufFlag(const GgufFile& gguf, std::string_view key, bool absent) {
  STRATA_ASSIGN_OR_RETURN(std::optional<bool> value, gguf.GetBool(key));
  return value.value_or(absent);
}

}  // namespace

absl::StatusOr<SpmVocab> SpmVocabFromModelProto(std::string_view serialized,
                                                const std::string& source) {
  strata::spm::ModelProto model;
  if (!model.ParseFromArray(serialized.data(), static_cast<int>(serialized.size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not a SentencePiece model (ModelProto does not parse)"));
  }
  const auto& trainer = model.trainer_spec();
  const auto& norm = model.normalizer_spec();
  if (trainer.model_type() != strata::spm::TrainerSpec::BPE) {
    return absl::UnimplementedError(absl::StrCat(
        source, ": SentencePiece model type ",
        strata::spm::TrainerSpec::ModelType_Name(trainer.model_type()),
        " is not supported yet (only BPE)"));
  }
  if (!norm.precompiled_charsmap().empty() || trainer.treat_whitespace_as_suffix()) {
    return absl::UnimplementedError(absl::StrCat(
        source, ": SentencePiece normalization rule '", norm.name(),
        "' is not supported yet (only identity, whitespace as prefix)"));
  }
  SpmVocab vocab;
  vocab.pieces.reserve(model.pieces_size());
  for (int i = 0; i < model.pieces_size(); ++i) {
    const auto& piece = model.pieces(i);
    STRATA_ASSIGN_OR_RETURN(PieceType type, CheckedPieceType(piece.type(), i, source));
    vocab.pieces.push_back(piece.piece());
    vocab.scores.push_back(piece.score());
    vocab.types.push_back(type);
  }
  vocab.unk_id = trainer.unk_id();
  vocab.bos_id = trainer.bos_id();
  vocab.eos_id = trainer.eos_id();
  vocab.add_bos = true;  // SentencePiece models leave this to the caller; HF's LlamaTokenizer adds BOS
  vocab.add_eos = false;
  vocab.add_dummy_prefix = norm.add_dummy_prefix();
  vocab.remove_extra_whitespaces = norm.remove_extra_whitespaces();
  vocab.escape_whitespaces = norm.escape_whitespaces();
  vocab.byte_fallback = trainer.byte_fallback();
  vocab.unk_surface = trainer.unk_surface();
  return vocab;
}

absl::StatusOr<SpmVocab> SpmVocabFromGguf(const GgufFile& gguf) {
  const std::string& path = gguf.path();
  STRATA_ASSIGN_OR_RETURN(std::optional<std::string> model, gguf.GetString("tokenizer.ggml.model"));
  if (!model) {
    return absl::NotFoundError(absl::StrCat(path, ": no tokenizer.ggml.model (no vocabulary)"));
  }
  if (*model != "llama") {
    return absl::UnimplementedError(absl::StrCat(
        path, ": GGUF tokenizer model '", *model,
        "' is not supported yet (only 'llama', SentencePiece BPE)"));
  }
  SpmVocab vocab;
  STRATA_ASSIGN_OR_RETURN(auto tokens, gguf.GetStringArray("tokenizer.ggml.tokens"));
  if (!tokens) return absl::NotFoundError(absl::StrCat(path, ": no tokenizer.ggml.tokens"));
  vocab.pieces = std::move(*tokens);
  const size_t n = vocab.pieces.size();
  // Scores and types are optional (all 0 / all normal), but must match the tokens in length.
  STRATA_ASSIGN_OR_RETURN(const std::vector<double> score_values,
                          ArrayOr(gguf.GetFloatArray("tokenizer.ggml.scores"), n, 0.0));
  STRATA_ASSIGN_OR_RETURN(
      const std::vector<int64_t> type_values,
      ArrayOr(gguf.GetIntArray("tokenizer.ggml.token_type"), n,
              static_cast<int64_t>(PieceType::kNormal)));
  if (score_values.size() != n || type_values.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": tokenizer.ggml.tokens has ", n, " entries but scores/token_type have ",
        score_values.size(), "/", type_values.size()));
  }
  vocab.scores.assign(score_values.begin(), score_values.end());
  vocab.types.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    STRATA_ASSIGN_OR_RETURN(PieceType type, CheckedPieceType(type_values[i], i, path));
    vocab.types.push_back(type);
  }
  STRATA_ASSIGN_OR_RETURN(vocab.unk_id, GgufTokenId(gguf, "tokenizer.ggml.unknown_token_id", 0));
  STRATA_ASSIGN_OR_RETURN(vocab.bos_id, GgufTokenId(gguf, "tokenizer.ggml.bos_token_id", 1));
  STRATA_ASSIGN_OR_RETURN(vocab.eos_id, GgufTokenId(gguf, "tokenizer.ggml.eos_token_id", 2));
  for (std::string_view key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    STRATA_ASSIGN_OR_RETURN(int32_t id, GgufTokenId(gguf, key, -1));
    if (id >= 0) vocab.extra_eos_ids.push_back(id);
  }
  STRATA_ASSIGN_OR_RETURN(vocab.add_bos, GgufFlag(gguf, "tokenizer.ggml.add_bos_token", true));
  STRATA_ASSIGN_OR_RETURN(vocab.add_eos, GgufFlag(gguf, "tokenizer.ggml.add_eos_token", false));
  STRATA_ASSIGN_OR_RETURN(vocab.add_dummy_prefix,
                          GgufFlag(gguf, "tokenizer.ggml.add_space_prefix", true));
  STRATA_ASSIGN_OR_RETURN(vocab.remove_extra_whitespaces,
                          GgufFlag(gguf, "tokenizer.ggml.remove_extra_whitespaces", false));
  vocab.escape_whitespaces = true;
  vocab.byte_fallback = true;
  return vocab;
}

}  // namespace strata::tokenizer

// SpmVocab: everything the SentencePiece BPE tokenizer needs, independent of where it came
// from (a SentencePiece `tokenizer.model`, or GGUF `tokenizer.ggml.*` metadata of type "llama").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/tokenizer/added_tokens.h"

namespace strata {
class GgufFile;
}  // namespace strata

namespace strata::tokenizer {

// Piece types; the values are SentencePiece's ModelProto.SentencePiece.Type, which GGUF's
// tokenizer.ggml.token_type uses too.
enum class PieceType : uint8_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct SpmVocab {
  std::vector<std::string> pieces;  // [vocab_size]; spaces are U+2581
  std::vector<float> scores;        // [vocab_size]; higher merges first
  std::vector<PieceType> types;     // [vocab_size]

  int32_t unk_id = 0;
  int32_t bos_id = -1;  // -1: none
  int32_t eos_id = -1;  // -1: none
  std::vector<int32_t> extra_eos_ids;  // also end generation (eot, eom, generation_config)

  bool add_bos = true;
  bool add_eos = false;

  // Normalization (SentencePiece NormalizerSpec with the identity rule).
  bool add_dummy_prefix = true;           // prepend a space to the input
  bool remove_extra_whitespaces = false;  // strip and collapse runs of ' '
  bool escape_whitespaces = true;         // ' ' -> U+2581
  bool byte_fallback = false;             // unknown characters -> <0xXX> pieces
  std::string unk_surface = " \xE2\x81\x87 ";  // Decode text of the unknown piece
  // The dummy prefix goes on every piece of text between added tokens (Hugging Face's
  // legacy behaviour, and llama.cpp's), or only on the input's first (tokenizer_config.json
  // "legacy": false).
  bool prefix_every_segment = true;

  // Tokens added on top of the SentencePiece model (tokenizer_config.json
  // "added_tokens_decoder": Phi-3's <|user|>, <|end|>, ...). Ids past the model's pieces extend
  // the vocabulary; their lstrip / rstrip flags apply when they are matched.
  std::vector<AddedToken> added;
};

// Parses a serialized SentencePiece ModelProto (the bytes of a `tokenizer.model`). Only BPE
// models with the identity normalizer are supported; others are Unimplemented. `source` names
// the file in errors.
absl::StatusOr<SpmVocab> SpmVocabFromModelProto(std::string_view serialized,
                                                const std::string& source);

// Reads the vocabulary of a GGUF file whose tokenizer.ggml.model is "llama". Errors name the
// file and key; other tokenizer models are Unimplemented.
absl::StatusOr<SpmVocab> SpmVocabFromGguf(const GgufFile& gguf);

}  // namespace strata::tokenizer

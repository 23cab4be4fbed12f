// SentencePiece BPE tokenizer (the Llama 1/2, Mistral, Mixtral, TinyStories vocabularies),
// reimplementing SentencePiece's bpe_model.cc / normalizer.cc (and llama.cpp's llm_tokenizer_spm,
// which agrees with it) over an SpmVocab.
//
// libsentencepiece itself is not used: Debian's build carries its own copy of protobuf 3.14 and
// aborts in any process that also loads the system libprotobuf (which gRPC needs).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "coordinator/tokenizer/added_tokens.h"
#include "coordinator/tokenizer/spm_vocab.h"
#include "coordinator/tokenizer/tokenizer.h"

namespace strata::tokenizer {

class SpmTokenizer : public Tokenizer {
 public:
  // Validates `vocab` (sizes agree, special ids in range, byte pieces well formed). `source`
  // names the file in errors.
  static absl::StatusOr<std::unique_ptr<SpmTokenizer>> Create(SpmVocab vocab,
                                                              const std::string& source);

  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                              bool add_special) const override;
  absl::StatusOr<std::vector<int32_t>> EncodeWithSpecialTokens(std::string_view text,
                                                               bool add_special) const override;
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids,
                                     bool skip_special) const override;
  absl::StatusOr<std::string> TokenToPiece(int32_t id) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(vocab_.pieces.size()); }
  int32_t bos_id() const override { return vocab_.bos_id; }
  const absl::flat_hash_set<int32_t>& eos_ids() const override { return eos_ids_; }
  bool IsSpecial(int32_t id) const override;
  size_t max_bytes_per_token() const override { return max_bytes_per_token_; }

 private:
  explicit SpmTokenizer(SpmVocab vocab);

  std::vector<int32_t> EncodeImpl(std::string_view text, bool add_special,
                                  bool parse_special) const;
  // Input text -> the string BPE runs on (dummy prefix when `dummy_prefix` and the model asks
  // for it, spaces escaped).
  std::string Normalize(std::string_view text, bool dummy_prefix) const;
  // Normalized text -> ids: split into characters and user-defined pieces, merge by score.
  void EncodeNormalized(std::string_view normalized, std::vector<int32_t>* ids) const;
  // Appends the ids of one final BPE symbol (resegmenting unused pieces, byte fallback).
  void EmitSymbol(std::string_view symbol,
                  const absl::flat_hash_map<std::string_view,
                                            std::pair<std::string_view, std::string_view>>&
                      rev_merge,
                  std::vector<int32_t>* ids) const;
  // Longest user-defined piece at the start of `s`, or 0.
  size_t MatchUserDefined(std::string_view s) const;

  SpmVocab vocab_;
  absl::flat_hash_set<int32_t> eos_ids_;
  // Pieces BPE may produce (normal, user-defined, unused) -> id.
  absl::flat_hash_map<std::string_view, int32_t> piece_to_id_;
  std::vector<std::string_view> user_defined_;  // longest first
  std::array<int32_t, 256> byte_to_id_;         // -1 where the vocabulary lacks <0xXX>
  std::unique_ptr<AddedTokenMatcher> control_;  // control pieces and added tokens
  bool has_plain_added_ = false;  // added tokens matched in plain text too (not special)
  int32_t added_from_ = INT32_MAX;  // first id appended past the SentencePiece model
  size_t max_bytes_per_token_ = 0;
};

}  // namespace strata::tokenizer

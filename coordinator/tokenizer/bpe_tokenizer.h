// BpeTokenizer: the Hugging Face fast-tokenizer pipeline for BPE models, built from a
// tokenizer.json (tokenizer_json.cc) or a GGUF "gpt2" vocabulary (gguf_bpe_vocab.cc):
//
//   text -> cut out added tokens -> normalize each piece -> pre-tokenize into words
//        -> BPE each word -> [post-processor prefix] ids [suffix]
//   ids  -> token strings (special tokens optionally dropped) -> decoder chain -> UTF-8 text
//
// Covers byte-level BPE (GPT-2, Llama 3, Qwen 2/2.5/3, DeepSeek, Falcon) and SentencePiece-style
// BPE with byte fallback (Llama 2, Mistral, Gemma tokenizer.json).
//
// Invalid UTF-8 input is read as Python / Rust lossy decoding reads it: one U+FFFD per maximal
// ill-formed byte sequence.
//
// Thread-safety: immutable after Create (the BPE word cache is internally locked).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "coordinator/tokenizer/added_tokens.h"
#include "coordinator/tokenizer/bpe_model.h"
#include "coordinator/tokenizer/decoder.h"
#include "coordinator/tokenizer/normalizer.h"
#include "coordinator/tokenizer/pre_tokenizer.h"
#include "coordinator/tokenizer/tokenizer.h"

namespace strata::tokenizer {

// The parts a BpeTokenizer is assembled from.
struct BpeTokenizerParts {
  BpeModelSpec model;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  Decoder decoder;
  std::vector<AddedToken> added_tokens;
  std::vector<int32_t> prefix_ids;  // post-processor, with add_special (e.g. BOS)
  std::vector<int32_t> suffix_ids;  // post-processor, with add_special (e.g. EOS)
  int32_t bos_id = -1;
  std::vector<int32_t> eos_ids;  // all ids that end generation
};

class BpeTokenizer : public Tokenizer {
 public:
  // Builds the tokenizer; errors name `source` (the file) and what is inconsistent.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> Create(BpeTokenizerParts parts,
                                                              std::string_view source);

  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                              bool add_special) const override;
  absl::StatusOr<std::vector<int32_t>> EncodeWithSpecialTokens(std::string_view text,
                                                               bool add_special) const override;
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids,
                                     bool skip_special) const override;
  absl::StatusOr<std::string> TokenToPiece(int32_t id) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(id_to_token_.size()); }
  int32_t bos_id() const override { return bos_id_; }
  const absl::flat_hash_set<int32_t>& eos_ids() const override { return eos_ids_; }
  bool IsSpecial(int32_t id) const override;
  size_t max_bytes_per_token() const override { return max_bytes_per_token_; }

 private:
  BpeTokenizer(BpeTokenizerParts parts, std::unique_ptr<BpeModel> model);

  std::vector<int32_t> EncodeImpl(std::string_view text, bool add_special,
                                  bool parse_special) const;
  // Normalizes, pre-tokenizes and BPE-encodes one piece of text between added tokens.
  void EncodeText(std::string_view text, bool at_start, bool parse_special,
                  std::vector<int32_t>* ids) const;

  std::unique_ptr<BpeModel> model_;
  Normalizer normalizer_;
  PreTokenizer pre_tokenizer_;
  Decoder decoder_;
  AddedTokenMatcher raw_added_;         // added tokens matched before normalization
  AddedTokenMatcher normalized_added_;  // added tokens matched after normalization
  std::vector<int32_t> prefix_ids_;
  std::vector<int32_t> suffix_ids_;
  int32_t bos_id_;
  absl::flat_hash_set<int32_t> eos_ids_;
  std::vector<std::string> id_to_token_;  // [vocab_size]; "" for unused ids
  std::vector<std::string> id_to_bytes_;  // byte-level decoder only: the bytes of each id
  std::vector<bool> special_;             // [vocab_size]
  size_t max_bytes_per_token_ = 0;
};

}  // namespace strata::tokenizer

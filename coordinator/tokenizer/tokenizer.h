// Text <-> token ids for the coordinator. Workers never see text: the coordinator encodes
// prompts, decodes sampled ids, and streams the text through IncrementalDetokenizer.
//
// Entry point: LoadTokenizer(model_path) picks the implementation from what the model ships.
// Built today: BpeTokenizer (bpe_tokenizer.h) for Hugging Face `tokenizer.json` BPE models
// (byte-level and SentencePiece-style) and GGUF "gpt2" vocabularies; SpmTokenizer
// (spm_tokenizer.h) for SentencePiece BPE models from a `tokenizer.model` file or a GGUF file
// whose `tokenizer.ggml.model` is "llama". WordPiece/Unigram models are Unimplemented.
//
// Thread-safety: a loaded Tokenizer is immutable; all methods are const and may be called
// concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace strata::tokenizer {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Encodes UTF-8 `text`. Special tokens written in the text (e.g. "<s>") are not parsed as
  // such; they are encoded as ordinary text (non-special added tokens are still matched, as in
  // Hugging Face tokenizers with split_special_tokens). With `add_special`, adds BOS in front and EOS at
  // the end as the model's configuration asks (add_bos_token / add_eos_token). Invalid UTF-8
  // bytes are encoded as U+FFFD.
  virtual absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                                      bool add_special) const = 0;

  // As Encode, but special tokens written in the text (e.g. "<|im_start|>", "<s>") become their
  // ids, as Hugging Face tokenizers do by default. For text rendered by a chat template; never
  // for untrusted user text, which could otherwise forge control tokens.
  virtual absl::StatusOr<std::vector<int32_t>> EncodeWithSpecialTokens(std::string_view text,
                                                                       bool add_special) const = 0;

  // Decodes ids to UTF-8 text. The returned text is always valid UTF-8: bytes of byte-fallback
  // tokens that do not form a complete character become U+FFFD. With `skip_special`, special
  // (control) tokens produce no text; otherwise their piece text (e.g. "<s>") is written.
  // An id outside [0, vocab_size()) is InvalidArgument.
  virtual absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids,
                                             bool skip_special) const = 0;

  // The raw vocabulary entry of `id` (e.g. "\u2581Hello", "<0x0A>", "<s>").
  virtual absl::StatusOr<std::string> TokenToPiece(int32_t id) const = 0;

  // Number of ids; valid ids are [0, vocab_size()).
  virtual int32_t vocab_size() const = 0;

  // Beginning-of-sequence id, or -1 when the model has none.
  virtual int32_t bos_id() const = 0;

  // Every id that ends generation (eos, and e.g. eot/eom or generation_config's list).
  virtual const absl::flat_hash_set<int32_t>& eos_ids() const = 0;

  // True for control tokens (bos, eos, pad, chat markers): skipped by Decode(skip_special).
  virtual bool IsSpecial(int32_t id) const = 0;

  // At most how many bytes of input text one token stands for, or 0 when nothing bounds it
  // (the tokenizer drops or collapses text: stripped or collapsed whitespace, fused unknowns).
  // A text longer than this times a context cannot fit in it, and need not be encoded to know.
  virtual size_t max_bytes_per_token() const = 0;
};

// Loads the tokenizer of a model:
//  * a Hugging Face model directory: uses `tokenizer.json` when present (the fast tokenizer
//    transformers uses), else `tokenizer.model` (SentencePiece); reads `tokenizer_config.json`
//    (bos/eos tokens, add_bos_token, add_eos_token) and `generation_config.json`
//    (eos_token_id) when present;
//  * a `.gguf` file: uses the vocabulary in its metadata (tokenizer.ggml.*, model "llama" or
//    "gpt2");
//  * a SentencePiece `.model` file.
// Errors name the path and what was missing or unsupported.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& model_path);

}  // namespace strata::tokenizer

// GGUF vocabularies of type "gpt2" (byte-level BPE: GPT-2, Falcon, DeepSeek, Llama 3, Qwen, ...)
// as a BpeTokenizer, following llama.cpp's llm_tokenizer_bpe: tokens and ranked merges from
// tokenizer.ggml.*, control tokens (type 3) as special added tokens, user-defined tokens
// (type 4) as added tokens that are always matched, and the pre-tokenizer regexes llama.cpp
// uses for the name in tokenizer.ggml.pre.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/tokenizer/tokenizer.h"

namespace strata {
class GgufFile;
}  // namespace strata

namespace strata::tokenizer {

// llama.cpp's pre-tokenizer for a tokenizer.ggml.pre name.
struct GgufPreTokenizer {
  std::vector<std::string> regexes;  // applied in turn, each splitting the words further
  bool ignore_merges = false;        // a word that is a token is not merged (Llama 3)
  bool add_bos = false;              // default when tokenizer.ggml.add_bos_token is absent
};

// The pre-tokenizer llama.cpp uses for `name` ("" means "default"); Unimplemented naming the
// pre-tokenizer and `source` when Strata does not know it.
absl::StatusOr<GgufPreTokenizer> GgufPreTokenizerFor(std::string_view name,
                                                     std::string_view source);

// Builds the tokenizer of a GGUF file whose tokenizer.ggml.model is "gpt2". Errors name the file
// and the key at fault.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadGgufBpeTokenizer(const GgufFile& gguf);

}  // namespace strata::tokenizer

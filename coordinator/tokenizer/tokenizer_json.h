// Loading a Hugging Face fast tokenizer (tokenizer.json) into a BpeTokenizer, with the model's
// tokenizer_config.json (bos/eos tokens, add_bos_token/add_eos_token) and
// generation_config.json (eos_token_id) applied when present.
#pragma once

#include <filesystem>
#include <memory>

#include "absl/status/statusor.h"
#include "boost/json.hpp"
#include "coordinator/tokenizer/tokenizer.h"

namespace strata::tokenizer {

// Loads `dir`/tokenizer.json. Model types other than BPE, and unsupported normalizers,
// pre-tokenizers, post-processors or decoders, are Unimplemented naming the file and the type.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerJson(const std::filesystem::path& dir);

// generation_config.json's eos_token_id (an id or a list of ids), in order; ids outside
// [0, vocab_size) are ignored.
std::vector<int32_t> GenerationConfigEosIds(const boost::json::object& config, int32_t vocab_size);

}  // namespace strata::tokenizer

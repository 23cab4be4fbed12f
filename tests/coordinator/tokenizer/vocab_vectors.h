// Reading llama.cpp-style tokenizer test vectors: `X.inp` holds the cases, each followed by a
// line `__ggml_vocab_test__`; `X.out` holds the expected ids of each case on one line.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace strata::tokenizer {
class Tokenizer;
}

namespace strata::tokenizer::testing {

struct VocabCase {
  std::string text;
  std::vector<int32_t> ids;
};

// The whole file; fails the current test (and returns "") when it cannot be read.
std::string ReadTextFile(const std::filesystem::path& path);

// Pairs the cases of `inp` with the lines of `out`; fails the current test when the counts
// differ or an id does not parse.
std::vector<VocabCase> ReadVocabCases(const std::filesystem::path& inp,
                                      const std::filesystem::path& out);

// Encodes every case with `tokenizer` and expects the reference's ids, and that those ids
// bound the text's bytes as the gateway assumes when it refuses a prompt too long for any
// tokenization (Tokenizer::max_bytes_per_token; 0 claims no bound). Prints the bound and
// returns how many cases matched.
int ExpectReferenceIds(const Tokenizer& tokenizer, const std::vector<VocabCase>& cases,
                       const std::string& name);

// A temporary model folder holding shared data's tokenizers/hf/<name>/tokenizer.json
// (decompressed) and tokenizer_config.json, as LoadTokenizer and transformers.js expect. Empty
// when the shared data is missing.
std::filesystem::path HfTokenizerDir(const std::string& name);

}  // namespace strata::tokenizer::testing

// A compiled PCRE2 regular expression for the tokenizers' split patterns (GPT-2, Llama 3, Qwen,
// DeepSeek pre-tokenizers; Replace normalizers/decoders). Compiled with PCRE2_UTF | PCRE2_UCP so
// that \s, \w, \d and \p{..} follow Unicode, as Oniguruma (Hugging Face tokenizers) does; JIT-
// compiled when the platform supports it.
//
// Thread-safety: immutable after Create; FindAll may run concurrently (match data and the JIT
// stack are per thread).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace strata::tokenizer {

class Regex {
 public:
  // Compiles `pattern` (UTF-8). Errors name `source` (the file and field) and PCRE2's message.
  static absl::StatusOr<std::unique_ptr<Regex>> Create(std::string_view pattern,
                                                       std::string_view source);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [begin, end) byte ranges of all non-overlapping matches in `text`, left to
  // right (an empty match advances by one character). `text` must be valid UTF-8.
  void FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const;

 private:
  explicit Regex(void* code, bool jit) : code_(code), jit_(jit) {}

  void* code_;  // pcre2_code_8*
  bool jit_;
};

}  // namespace strata::tokenizer

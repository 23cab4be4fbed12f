// Hugging Face tokenizer.json decoders: token strings -> text. Supported: ByteLevel, Metaspace,
// ByteFallback, Fuse, Strip, Replace and Sequence, with the semantics of tokenizers'
// decode_chain (each step maps the list of token strings to a new list; the results are joined).
//
// The output is always valid UTF-8: byte sequences that do not form characters become U+FFFD.
//
// Thread-safety: immutable after construction.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/json.hpp"
#include "coordinator/tokenizer/normalizer.h"
#include "coordinator/tokenizer/utf8.h"

namespace strata::tokenizer {

class Decoder {
 public:
  // Parses tokenizer.json's "decoder" value (null: tokens are joined as they are).
  static absl::StatusOr<Decoder> Parse(const boost::json::value& json, std::string_view source);

  // The plain ByteLevel decoder (GGUF "gpt2" vocabularies).
  static Decoder ByteLevel();

  // True when the decoder is exactly ByteLevel: text = concatenated token bytes.
  bool is_byte_level() const { return steps_.size() == 1 && steps_[0].kind == Kind::kByteLevel; }

  // Decodes token strings (vocabulary spelling) to valid UTF-8 text.
  std::string Decode(std::vector<std::string> tokens) const;

 private:
  enum class Kind { kByteLevel, kMetaspace, kByteFallback, kFuse, kStrip, kReplace };
  struct Step {
    Kind kind;
    std::string content;  // kStrip: the character; kReplace: replacement; kMetaspace: replacement
    ReplacePattern pattern;  // kReplace
    int start = 0;           // kStrip
    int stop = 0;            // kStrip
    bool prepend = true;     // kMetaspace: prepend_scheme != never
  };

  // Appends the step(s) of one non-Sequence component of type `type`.
  absl::Status ParseStep(const boost::json::object& obj, const std::string& type,
                         const std::string& where);
  static void Apply(const Step& step, std::vector<std::string>* tokens);

  std::vector<Step> steps_;
};

}  // namespace strata::tokenizer

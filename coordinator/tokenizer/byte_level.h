// GPT-2's byte-level alphabet: every byte is written as one printable Unicode character
// ("bytes_to_unicode": printable Latin-1 bytes stand for themselves, the other 68 bytes map to
// U+0100.. in order; ' ' becomes "Ġ", '\n' becomes "Ċ"). Byte-level BPE vocabularies (GPT-2,
// Llama 3, Qwen, DeepSeek) store their tokens in this alphabet.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace strata::tokenizer {

// `bytes` with every byte written as its byte-level character (UTF-8).
std::string BytesToByteLevel(std::string_view bytes);

// The bytes a byte-level token stands for, or nullopt when `token` contains a character
// outside the 256-character alphabet (or is not valid UTF-8).
std::optional<std::string> ByteLevelToBytes(std::string_view token);

}  // namespace strata::tokenizer

// Deterministic Unicode-heavy test strings for comparing tokenizers with reference
// implementations (and for the tokenizer benchmark): mixed scripts, emoji (ZWJ sequences, flags,
// skin tones), combining marks and decomposed characters, digit runs, runs of spaces, tabs and
// newlines, English contractions in mixed case, and code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace strata::tokenizer::testing {

// `count` strings of roughly 1..`max_fragments` fragments each; the same seed gives the same
// strings on every platform.
std::vector<std::string> RandomTexts(int count, int max_fragments, uint64_t seed);

}  // namespace strata::tokenizer::testing

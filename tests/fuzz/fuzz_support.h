// What the fuzz targets share: a small model written once per process, the shared data, and a
// failing property.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace strata {
class WeightSource;
}

namespace strata::fuzz {

// A synthetic Llama (the tiny preset's vocabulary, 2 layers, context `context_length`) written
// on first use to a temporary folder: a real model that runs fast under the sanitizers. Aborts
// if it cannot be written.
const std::string& SmallModel(int64_t context_length = 256);

// A file or folder under ../shared/data (decompressed when only its .xz exists), or empty.
std::filesystem::path SharedData(const std::string& relative);

// Writes `data` to a file named `name` in this process's fuzz folder (rewritten by every input;
// the parsers under test read files) and returns its path.
std::string WriteInput(const std::string& name, const uint8_t* data, size_t size);

// Reads every byte of every tensor of `source` (row by row, honouring the stride) and every
// GGUF metadata value, so that a view the parser let past its checks is really read.
uint64_t TouchEverything(const WeightSource& source);

// Quiets the process's logs (a fuzz run would print one line per refused request).
void QuietLogs();

// A property the target checks does not hold: prints `what` and aborts (a crash to the fuzzer).
[[noreturn]] void PropertyFailed(std::string_view what);

}  // namespace strata::fuzz

// Fuzz target: a Hugging Face tokenizer.json (model, merges, added tokens, normalizer,
// pre-tokenizer and decoder), loaded as a model folder is; when it loads, a fixed text is
// encoded and decoded with it. Errors are fine; a crash is not.
#include <cstdint>
#include <filesystem>

#include "coordinator/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  strata::fuzz::QuietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  const std::filesystem::path json = fuzz::WriteInput("tokenizer.json", data, size);
  auto tok = tokenizer::LoadTokenizer(json.parent_path().string());
  if (!tok.ok()) return 0;
  auto ids = (*tok)->Encode("Hello, world! 123 \xc3\xa9t\xc3\xa9 \xe2\x96\x81x\n\tend", true);
  if (ids.ok()) (void)(*tok)->Decode(*ids, false);
  return 0;
}

// Fuzz target: a GGUF model file, through everything that reads one when a model loads: the
// container (metadata, tensor table, alignment, offsets), every tensor view and metadata value,
// the model configuration, the vocabulary (tokenizer.ggml.*), the chat template, and the
// tensor table checked against the family's weights. Errors are fine; a crash, an
// out-of-bounds read or a view that cannot be read is not.
#include <cstdint>

#include "common/formats/gguf.h"
#include "common/model_config.h"
#include "coordinator/chat/template_source.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  strata::fuzz::QuietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  const std::string path = fuzz::WriteInput("model.gguf", data, size);
  auto gguf = GgufFile::Open(path);
  if (!gguf.ok()) return 0;
  fuzz::TouchEverything(**gguf);
  if (auto config = ConfigFromGguf(**gguf); config.ok()) (void)ComputeRopeFrequencies(*config);
  (void)tokenizer::LoadTokenizer(path);
  (void)chat::LoadChatTemplates(path);
  return 0;
}

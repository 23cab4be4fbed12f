// Fuzz target: a safetensors file: header length, JSON header (dtypes, shapes, offsets,
// __metadata__), then every tensor view read end to end. Errors are fine; a crash, an
// out-of-bounds read or a view that cannot be read is not.
#include <cstdint>

#include "common/formats/safetensors.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  auto file = SafetensorsFile::Open(fuzz::WriteInput("model.safetensors", data, size));
  if (file.ok()) fuzz::TouchEverything(**file);
  return 0;
}

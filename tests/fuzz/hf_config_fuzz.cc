// Fuzz target: a Hugging Face config.json, as every family reads it (architectures, sizes,
// rope_scaling of every type, sliding windows, MoE and MLA fields), then the RoPE frequencies
// derived from it. Errors are fine; a crash, a division by zero or an overflow is not (UBSan).
#include <cstdint>
#include <string_view>

#include "common/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  auto config =
      ParseHfConfig(std::string_view(reinterpret_cast<const char*>(data), size), "config.json");
  if (config.ok()) (void)ComputeRopeFrequencies(*config);
  return 0;
}

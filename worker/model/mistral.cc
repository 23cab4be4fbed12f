// Mistral: Llama's layer and names; the sliding window (Mistral 7B v0.1: 4096) comes from the
// config and bounds every layer's attention. GGUF files of Mistral say `llama`.
#include "worker/model/families.h"

namespace strata {

const Family& MistralFamily() {
  static const Family family = {
      .name = "mistral",
      .architectures = {"MistralForCausalLM"},
      .gguf_architectures = {},
      .names = &LlamaNames(),
      .check = &CheckDense,
      .decoder = &LlamaDecoder,
      .build_layer = &BuildLlamaLayer,
  };
  return family;
}

}  // namespace strata

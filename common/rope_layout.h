// Which pairs of dimensions RoPE rotates: a property of a checkpoint's q/k row order, shared
// by the model config (which knows the checkpoint) and the backends (which rotate).
#pragma once

#include <cstdint>

namespace strata {

enum class RopeLayout : uint8_t {
  kHalfSplit,    // pairs (i, i + rotary_dim / 2): Hugging Face
  kInterleaved,  // pairs (2i, 2i + 1): GGUF (llama.cpp's converter permutes q/k rows) and GPT-J
};

}  // namespace strata

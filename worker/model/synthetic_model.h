// Deterministic random-weight Llama models written as GGUF: the embedded default model of
// `strata generate`/`serve` (so a fresh machine works offline), the benchmark models, and
// test models of any shape. Weights are uniform in [-a, a] from Philox keyed by the seed and
// the tensor, so the same spec always gives the same file. Their output is not meaningful
// text: the model is labelled "random weights" wherever it is reported.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dtype.h"

namespace strata {

struct SyntheticModelSpec {
  std::string name;
  int64_t vocab_size = 512;  // at least 259: <unk>, <s>, </s> and the 256 byte tokens
  int64_t hidden_size = 64;
  int64_t intermediate_size = 192;
  int64_t num_layers = 2;
  int64_t num_heads = 8;
  int64_t num_kv_heads = 4;
  int64_t context_length = 2048;
  double rope_theta = 10000.0;
  DType dtype = DType::kF32;  // of the matrices; norms are always f32
  uint64_t seed = 1;
  // Mixture of experts (a Mixtral-shaped model, GGUF `llama` with stacked experts): every
  // layer's MLP becomes num_experts experts of intermediate_size, top experts_per_token.
  int64_t num_experts = 0;
  int64_t experts_per_token = 2;
};

// Named presets: "tiny" (the embedded default), "bench-500m" (~530 MB in f32, 6 layers of
// hidden 1024), "tinyllama" (TinyLlama-1.1B shape, the peer comparison in DESIGN.md),
// "llama3-8b" (Llama-3-8B's shape: 32 layers of 4096, GQA 32/8, vocabulary 128256; the GPU
// decode benchmark), "mixtral-2l" (Mixtral-8x7B's layer shape, 2 layers: 8 experts of 14336,
// top 2).
absl::StatusOr<SyntheticModelSpec> SyntheticPreset(std::string_view name);
std::vector<std::string> SyntheticPresetNames();

// Writes the model (weights and a byte-fallback SentencePiece vocabulary) to `path`.
absl::Status WriteSyntheticModel(const SyntheticModelSpec& spec, const std::string& path);

// The embedded default: the "tiny" preset at ~/.cache/strata/models (or $STRATA_CACHE_DIR),
// written on first use. Returns its path.
absl::StatusOr<std::string> EnsureDefaultModel();

}  // namespace strata

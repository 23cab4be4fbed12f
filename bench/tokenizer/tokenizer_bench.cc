// strata_tokenizer_bench: encode and decode throughput (tokens/s, one thread) of the byte-level
// BPE tokenizers of Llama 3 and Qwen 3 (tokenizer.json from shared data) on ~4 MB of mixed
// text: the deterministic Unicode-heavy fragments of the reference tests plus long English
// prose and code, so that the word cache sees a realistic mix of hits and misses.
//
// Run: build/bench/tokenizer/strata_tokenizer_bench [--benchmark_filter=...]
// Needs ../shared/data (or STRATA_SHARED_DATA); benchmarks are skipped without it.
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "tests/coordinator/tokenizer/random_texts.h"

namespace strata::tokenizer {
namespace {

namespace fs = std::filesystem;

fs::path SharedData() {
  if (const char* env = std::getenv("STRATA_SHARED_DATA"); env != nullptr && *env != '\0') {
    return env;
  }
  return fs::path(STRATA_SOURCE_DIR) / ".." / "shared" / "data";
}

// A model folder with the decompressed tokenizer.json and its tokenizer_config.json.
std::unique_ptr<Tokenizer> LoadHf(const std::string& name) {
  const fs::path src = SharedData() / "tokenizers" / "hf" / name;
  const fs::path dir = fs::temp_directory_path() / ("strata-tokenizer-bench-" + name);
  fs::create_directories(dir);
  if (!fs::exists(dir / "tokenizer.json")) {
    const std::string cmd = "xz -dc '" + (src / "tokenizer.json.xz").string() + "' > '" +
                            (dir / "tokenizer.json").string() + "'";
    if (std::system(cmd.c_str()) != 0) return nullptr;
  }
  fs::copy_file(src / "tokenizer_config.json", dir / "tokenizer_config.json",
                fs::copy_options::overwrite_existing);
  auto tokenizer = LoadTokenizer(dir.string());
  return tokenizer.ok() ? std::move(*tokenizer) : nullptr;
}

const std::string& Corpus() {
  static const std::string corpus = [] {
    static constexpr const char* kProse =
        "The quick brown fox jumps over the lazy dog. It wasn't the first time, and it won't "
        "be the last: in 2023 alone, 1,234 foxes were observed doing exactly this. ";
    static constexpr const char* kCode =
        "for (size_t i = 0; i < n; ++i) {\n  sum += values[i] * weights[i];\n}\n";
    std::string text;
    const std::vector<std::string> mixed = testing::RandomTexts(20000, 12, /*seed=*/1);
    for (size_t i = 0; text.size() < (4u << 20); ++i) {
      text += mixed[i % mixed.size()];
      text += kProse;
      if (i % 3 == 0) text += kCode;
    }
    return text;
  }();
  return corpus;
}

void BM_Encode(benchmark::State& state, const std::string& name) {
  const std::unique_ptr<Tokenizer> tokenizer = LoadHf(name);
  if (!tokenizer) return state.SkipWithError("shared data tokenizer not found");
  const std::string& text = Corpus();
  size_t tokens = 0;
  for (auto _ : state) {
    auto ids = tokenizer->Encode(text, /*add_special=*/false);
    tokens += ids->size();
    benchmark::DoNotOptimize(ids);
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

void BM_Decode(benchmark::State& state, const std::string& name) {
  const std::unique_ptr<Tokenizer> tokenizer = LoadHf(name);
  if (!tokenizer) return state.SkipWithError("shared data tokenizer not found");
  const std::vector<int32_t> ids = *tokenizer->Encode(Corpus(), /*add_special=*/false);
  for (auto _ : state) {
    auto text = tokenizer->Decode(ids, /*skip_special=*/false);
    benchmark::DoNotOptimize(text);
  }
  state.counters["tokens/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * ids.size()), benchmark::Counter::kIsRate);
}

BENCHMARK_CAPTURE(BM_Encode, llama3, std::string("llama3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, qwen3, std::string("qwen3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, llama3, std::string("llama3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, qwen3, std::string("qwen3"))->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace strata::tokenizer

BENCHMARK_MAIN();

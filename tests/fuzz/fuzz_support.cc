#include "tests/fuzz/fuzz_support.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>

#include "common/formats/gguf.h"
#include "common/formats/weight_source.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "tests/testing/shared_data.h"
#include "worker/model/synthetic_model.h"

namespace strata::fuzz {

const std::string& SmallModel(int64_t context_length) {
  static auto* paths = new std::map<int64_t, std::string>;
  auto [it, added] = paths->try_emplace(context_length);
  if (!added) return it->second;
  SyntheticModelSpec spec = *SyntheticPreset("tiny");
  spec.name = "strata-fuzz-random";
  spec.hidden_size = 64;
  spec.intermediate_size = 128;
  spec.num_layers = 2;
  spec.num_heads = 4;
  spec.num_kv_heads = 2;
  spec.context_length = context_length;
  it->second =
      (testing::TempDir("fuzz") / absl::StrCat("small-", context_length, ".gguf")).string();
  if (absl::Status written = WriteSyntheticModel(spec, it->second); !written.ok()) {
    PropertyFailed(std::string(written.message()));
  }
  return it->second;
}

std::filesystem::path SharedData(const std::string& relative) {
  std::filesystem::path path = testing::SharedDataPath(relative);
  if (path.empty() && testing::SharedDataRequired()) {
    PropertyFailed("shared data '" + relative + "' not found (STRATA_REQUIRE_SHARED_DATA=1)");
  }
  return path;
}

std::string WriteInput(const std::string& name, const uint8_t* data, size_t size) {
  static const std::filesystem::path dir = testing::TempDir("fuzz-input");
  const std::string path = (dir / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out.flush()) PropertyFailed("cannot write " + path);
  return path;
}

uint64_t TouchEverything(const WeightSource& source) {
  uint64_t sum = 0;
  for (const std::string& name : source.TensorNames()) {
    absl::StatusOr<TensorView> v = source.Get(name);
    if (!v.ok()) PropertyFailed("a listed tensor cannot be read: " + v.status().ToString());
    for (int64_t r = 0; r < v->Rows(); ++r) {
      const std::byte* row = v->Row(r);
      for (int64_t i = 0; i < v->RowBytes(); ++i) sum += static_cast<uint8_t>(row[i]);
    }
  }
  if (const auto* gguf = dynamic_cast<const GgufFile*>(&source)) {
    for (const auto& [key, value] : gguf->metadata()) {
      sum += key.size();
      (void)gguf->GetInt(key);
      (void)gguf->GetFloat(key);
      (void)gguf->GetFloatArray(key);
      (void)gguf->GetIntArray(key);
      if (auto s = gguf->GetString(key); s.ok() && s->has_value()) sum += (*s)->size();
      if (auto a = gguf->GetStringArray(key); a.ok() && a->has_value()) sum += (*a)->size();
    }
  }
  return sum;
}

void QuietLogs() { SetLogLevel("off"); }

void PropertyFailed(std::string_view what) {
  std::fprintf(stderr, "fuzz property failed: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

}  // namespace strata::fuzz

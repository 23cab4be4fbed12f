// Deterministic mutation fuzzing of the GGUF and safetensors parsers, run under
// AddressSanitizer (this binary and strata_formats_asan are built with -fsanitize=address).
//
// Seeds are valid files made by the writers plus the small real files under ../shared/data.
// Each iteration applies 1-3 mutations (bit flips, interesting bytes, field-aware overwrites of
// counts/lengths/dims/types/offsets located by walking the seed, JSON number and dtype edits,
// truncation, extension), parses the result, and on success reads every byte of every tensor
// view and every metadata value. The property: no crash, no out-of-bounds read, no hang.
#include <chrono>
#include <cstdio>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/formats/gguf.h"
#include "common/formats/gguf_writer.h"
#include "common/formats/safetensors.h"
#include "common/formats/safetensors_writer.h"
#include "common/formats/weight_source.h"
#include "gtest/gtest.h"
#include "tests/common/formats/format_test_util.h"
#include "tests/testing/shared_data.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

// A field of a seed file that field-aware mutations overwrite.
struct Field {
  size_t offset;
  int width;  // 4 or 8
};

constexpr std::array<uint64_t, 16> kInteresting = {0,
                                                   1,
                                                   2,
                                                   3,
                                                   4,
                                                   5,
                                                   8,
                                                   31,
                                                   32,
                                                   0x7f,
                                                   0xff,
                                                   0x7fffffff,
                                                   0xffffffff,
                                                   0x7fffffffffffffff,
                                                   0x8000000000000000,
                                                   0xffffffffffffffff};

// Walks a valid GGUF and records every count, length, type, dim and offset field.
class GgufFieldWalker {
 public:
  explicit GgufFieldWalker(const std::string& b) : b_(b) {}

  std::vector<Field> Walk() {
    fields_ = {{4, 4}, {8, 8}, {16, 8}};
    pos_ = 24;
    const uint64_t n_tensors = U64(8), n_kv = U64(16);
    for (uint64_t i = 0; i < n_kv && ok(); ++i) {
      String();
      const uint32_t type = Mark32();
      Value(type);
    }
    for (uint64_t i = 0; i < n_tensors && ok(); ++i) {
      String();
      const uint32_t n_dims = Mark32();
      for (uint32_t d = 0; d < n_dims; ++d) Mark64();
      Mark32();
      Mark64();
    }
    return fields_;
  }

 private:
  bool ok() const { return pos_ + 8 <= b_.size(); }
  uint64_t U64(size_t at) const {
    uint64_t v = 0;
    if (at + 8 <= b_.size()) std::memcpy(&v, b_.data() + at, 8);
    return v;
  }
  uint32_t Mark32() {
    uint32_t v = 0;
    if (pos_ + 4 <= b_.size()) std::memcpy(&v, b_.data() + pos_, 4);
    fields_.push_back({pos_, 4});
    pos_ += 4;
    return v;
  }
  uint64_t Mark64() {
    const uint64_t v = U64(pos_);
    fields_.push_back({pos_, 8});
    pos_ += 8;
    return v;
  }
  void String() { pos_ += Mark64(); }
  void Value(uint32_t type) {
    if (type == 8) return String();
    if (type == 9) {
      const uint32_t elem = Mark32();
      const uint64_t n = Mark64();
      for (uint64_t i = 0; i < n && ok(); ++i) {
        if (elem == 8) {
          // Record the first few string lengths only: vocabularies have 32k of them.
          if (i < 16)
            String();
          else
            pos_ += 8 + U64(pos_);
        } else {
          pos_ += GgufScalarSize(elem);
        }
      }
      return;
    }
    pos_ += GgufScalarSize(type);
  }

  const std::string& b_;
  size_t pos_ = 0;
  std::vector<Field> fields_;
};

// Positions of the digit runs and dtype strings inside a safetensors/JSON header.
std::vector<std::pair<size_t, size_t>> Tokens(const std::string& b, size_t begin, size_t end) {
  std::vector<std::pair<size_t, size_t>> tokens;
  for (size_t i = begin; i < end && i < b.size();) {
    size_t j = i;
    while (j < end && j < b.size() && std::isdigit(static_cast<unsigned char>(b[j]))) ++j;
    if (j > i) {
      tokens.push_back({i, j - i});
      i = j;
    } else if (b.compare(i, 5, "\"F32\"") == 0 || b.compare(i, 5, "\"F16\"") == 0) {
      tokens.push_back({i + 1, 3});
      i += 5;
    } else {
      ++i;
    }
  }
  return tokens;
}

struct Seed {
  std::string name;
  std::string bytes;
  bool gguf = false;  // else safetensors header (or index JSON when `index`)
  bool index = false;
  int iterations = 0;
  size_t header_end = 0;  // mutations concentrate before this offset
  std::vector<Field> fields;
  std::vector<std::pair<size_t, size_t>> tokens;
};

class Mutator {
 public:
  Mutator(const Seed& seed, uint32_t rng_seed) : seed_(seed), rng_(rng_seed) {}

  std::string Mutate() {
    std::string b = seed_.bytes;
    const int n = 1 + Uniform(3);
    for (int i = 0; i < n && !b.empty(); ++i) MutateOnce(b);
    return b;
  }

 private:
  size_t Uniform(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  size_t Position(const std::string& b) {
    const size_t hot = std::min(b.size(), seed_.header_end + 64);
    return Uniform(4) != 0 && hot > 0 ? Uniform(hot) : Uniform(b.size());
  }

  void MutateOnce(std::string& b) {
    switch (Uniform(8)) {
      case 0:
        b[Position(b)] ^= static_cast<char>(1 << Uniform(8));
        break;
      case 1:
        b[Position(b)] = static_cast<char>(kInteresting[Uniform(kInteresting.size())]);
        break;
      case 2:
      case 3:
        OverwriteField(b);
        break;
      case 4:
        EditToken(b);
        break;
      case 5:
        b.resize(Position(b));
        break;
      case 6:
        b.append(1 + Uniform(64), static_cast<char>(Uniform(256)));
        break;
      default:
        b.erase(Position(b), 1 + Uniform(8));
        break;
    }
  }

  void OverwriteField(std::string& b) {
    if (seed_.fields.empty()) return EditToken(b);
    const Field f = seed_.fields[Uniform(seed_.fields.size())];
    if (f.offset + f.width > b.size()) return;
    uint64_t old = 0;
    std::memcpy(&old, b.data() + f.offset, f.width);
    const uint64_t choices[] = {kInteresting[Uniform(kInteresting.size())],
                                old + 1,
                                old - 1,
                                old * 2,
                                b.size(),
                                b.size() - f.offset,
                                old ^ (1ull << Uniform(64))};
    const uint64_t v = choices[Uniform(std::size(choices))];
    std::memcpy(b.data() + f.offset, &v, f.width);
  }

  void EditToken(std::string& b) {
    if (seed_.tokens.empty()) return;
    static const char* kReplacements[] = {"0",
                                          "1",
                                          "-1",
                                          "7",
                                          "4294967296",
                                          "9223372036854775807",
                                          "18446744073709551615",
                                          "1e400",
                                          "2.5",
                                          "F16",
                                          "BF16",
                                          "I8",
                                          "Q4",
                                          "\"",
                                          "[]",
                                          "{}",
                                          "null"};
    const auto [pos, len] = seed_.tokens[Uniform(seed_.tokens.size())];
    if (pos + len > b.size()) return;
    b.replace(pos, len, kReplacements[Uniform(std::size(kReplacements))]);
    if (!seed_.gguf && !seed_.index && b.size() >= 8) {
      // Keep the declared header length consistent most of the time, so the JSON is reached.
      if (Uniform(4) != 0) {
        uint64_t len8 = 0;
        std::memcpy(&len8, b.data(), 8);
        len8 += b.size() - seed_.bytes.size();
        std::memcpy(b.data(), &len8, 8);
      }
    }
  }

  const Seed& seed_;
  std::mt19937_64 rng_;
};

// Reads every byte of every tensor (row by row, honouring the stride) and every metadata value.
uint64_t TouchEverything(const WeightSource& source) {
  uint64_t sum = 0;
  for (const std::string& name : source.TensorNames()) {
    absl::StatusOr<TensorView> v = source.Get(name);
    EXPECT_TRUE(v.ok()) << v.status();
    if (!v.ok()) continue;
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
      if (auto s = gguf->GetString(key); s.ok() && s->has_value()) sum += (*s)->size();
      if (auto a = gguf->GetStringArray(key); a.ok() && a->has_value()) sum += (*a)->size();
    }
  }
  return sum;
}

struct TensorSpec {
  DType dtype;
  std::vector<int64_t> dims;  // outermost first
};

std::string WriterGgufSeed(const fs::path& dir) {
  GgufWriter w(/*alignment=*/64);
  w.SetString("general.architecture", "llama");
  w.SetUint32("llama.block_count", 2);
  w.SetFloat32("llama.rope.freq_base", 10000.0f);
  w.SetBool("flag", true);
  w.SetInt64("i64", -5);
  w.SetStringArray("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
  w.SetFloat32Array("tokenizer.ggml.scores", {0, 0, 0, -1.5});
  w.SetIntArray("tokenizer.ggml.token_type", {2, 3, 3, 1});
  const std::vector<TensorSpec> specs = {{DType::kF32, {3, 4}},
                                         {DType::kF16, {8}},
                                         {DType::kBF16, {2, 2, 2}},
                                         {DType::kQ8_0, {2, 32}},
                                         {DType::kQ4_0, {64}}};
  for (size_t i = 0; i < specs.size(); ++i) {
    const DType dtype = specs[i].dtype;
    const Shape shape(specs[i].dims.begin(), specs[i].dims.end());
    EXPECT_TRUE(
        w.AddTensorOwned(
             absl::StrCat("blk.", i, ".w"), dtype, shape,
             testing::Encode(dtype, testing::RandomFloats(NumElements(shape), i), shape.back()))
            .ok());
  }
  EXPECT_TRUE(w.Write(dir / "seed.gguf").ok());
  return testing::ReadBytes(dir / "seed.gguf");
}

std::string WriterSafetensorsSeed(const fs::path& dir) {
  SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  const std::vector<TensorSpec> specs = {{DType::kF32, {3, 4}},     {DType::kF16, {8}},
                                         {DType::kBF16, {2, 2, 2}}, {DType::kI8, {5}},
                                         {DType::kI32, {2}},        {DType::kF32, {}}};
  for (size_t i = 0; i < specs.size(); ++i) {
    const DType dtype = specs[i].dtype;
    const Shape shape(specs[i].dims.begin(), specs[i].dims.end());
    const int64_t cols = shape.empty() ? 1 : shape.back();
    EXPECT_TRUE(
        w.AddTensorOwned(absl::StrCat("t", i), dtype, shape,
                         testing::Encode(dtype, testing::RandomFloats(NumElements(shape), i), cols))
            .ok());
  }
  EXPECT_TRUE(w.Write(dir / "seed.safetensors").ok());
  EXPECT_TRUE(w.WriteSharded(dir, 48).ok());
  return testing::ReadBytes(dir / "seed.safetensors");
}

Seed MakeSeed(std::string name, std::string bytes, bool gguf, int iterations) {
  Seed s;
  s.name = std::move(name);
  s.bytes = std::move(bytes);
  s.gguf = gguf;
  s.iterations = iterations;
  if (gguf) {
    s.fields = GgufFieldWalker(s.bytes).Walk();
    s.header_end = s.fields.empty() ? 0 : s.fields.back().offset + 8;
  } else {
    uint64_t len = 0;
    std::memcpy(&len, s.bytes.data(), 8);
    s.header_end = 8 + len;
    s.fields = {{0, 8}};
    s.tokens = Tokens(s.bytes, 8, s.header_end);
  }
  return s;
}

fs::path ScratchDir() {
  // tmpfs keeps thousands of small writes off the disk.
  if (fs::is_directory("/dev/shm")) {
    fs::path p = fs::path("/dev/shm") / ("strata_fuzz_" + std::to_string(::getpid()));
    fs::create_directories(p);
    return p;
  }
  return strata::testing::TempDir("formats_fuzz");
}

std::vector<Seed> Seeds(const fs::path& dir) {
  std::vector<Seed> seeds;
  seeds.push_back(MakeSeed("writer.gguf", WriterGgufSeed(dir), true, 5000));
  seeds.push_back(MakeSeed("writer.safetensors", WriterSafetensorsSeed(dir), false, 5000));
  Seed index;
  index.name = "index.json";
  index.bytes = testing::ReadBytes(dir / "model.safetensors.index.json");
  index.gguf = false;
  index.index = true;
  index.iterations = 800;
  index.header_end = index.bytes.size();
  index.tokens = Tokens(index.bytes, 0, index.bytes.size());
  seeds.push_back(std::move(index));
  const std::vector<std::tuple<std::string, bool, int>> real = {
      {"models/stories260K/stories260K.gguf", true, 300},
      {"models/stories260K/hf/model.safetensors", false, 300},
      {"tokenizers/llamacpp/ggml-vocab-llama-spm.gguf", true, 60},
  };
  for (const auto& [rel, gguf, iterations] : real) {
    const fs::path p = strata::testing::SharedDataPath(rel);
    if (!p.empty()) seeds.push_back(MakeSeed(rel, testing::ReadBytes(p), gguf, iterations));
  }
  return seeds;
}

// Parses one mutated file; returns whether it opened.
bool ParseOne(const Seed& seed, const fs::path& dir, const std::string& bytes, uint64_t* sum) {
  absl::StatusOr<std::unique_ptr<WeightSource>> source;
  if (seed.index) {
    testing::WriteBytes(dir / "model.safetensors.index.json", bytes);
    source = ShardedSafetensors::Open(dir / "model.safetensors.index.json");
  } else if (seed.gguf) {
    testing::WriteBytes(dir / "m.gguf", bytes);
    source = GgufFile::Open(dir / "m.gguf");
  } else {
    testing::WriteBytes(dir / "m.safetensors", bytes);
    source = SafetensorsFile::Open(dir / "m.safetensors");
  }
  if (!source.ok()) {
    EXPECT_FALSE(source.status().message().empty());
    return false;
  }
  *sum += TouchEverything(**source);
  return true;
}

TEST(FormatsFuzzTest, MutatedFilesNeverCrashOrReadOutOfBounds) {
  const fs::path dir = ScratchDir();
  const auto start = std::chrono::steady_clock::now();
  uint64_t sum = 0;
  for (const Seed& seed : Seeds(dir)) {
    ASSERT_TRUE(ParseOne(seed, dir, seed.bytes, &sum)) << seed.name << " seed must parse";
    int opened = 0;
    for (int i = 0; i < seed.iterations; ++i) {
      Mutator mutator(seed, 0x5eed0000u + i);
      opened += ParseOne(seed, dir, mutator.Mutate(), &sum);
    }
    std::printf("%-48s %5d mutations, %5d still parsed\n", seed.name.c_str(), seed.iterations,
                opened);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("fuzz: %.1f s, checksum %llu\n", seconds, static_cast<unsigned long long>(sum));
  if (dir.string().rfind("/dev/shm/", 0) == 0) fs::remove_all(dir);
}

}  // namespace
}  // namespace strata

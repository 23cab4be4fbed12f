#include "common/formats/safetensors.h"

#include <functional>

#include "absl/strings/str_cat.h"
#include "common/formats/gguf_writer.h"
#include "common/formats/safetensors_writer.h"
#include "common/formats/weight_source.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/formats/format_test_util.h"
#include "tests/testing/shared_data.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using testing::Encode;
using ::testing::HasSubstr;
using testing::RandomFloats;

struct Stored {
  std::string name;
  DType dtype;
  Shape shape;
  std::vector<std::byte> bytes;
};

std::vector<Stored> SampleTensors() {
  const std::vector<std::pair<DType, Shape>> specs = {
      {DType::kI8, {3, 5}},  {DType::kF16, {4, 3}}, {DType::kF32, {2, 3, 4}}, {DType::kBF16, {7}},
      {DType::kI32, {2, 2}}, {DType::kF32, {}},     {DType::kF16, {0, 4}},
  };
  std::vector<Stored> out;
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& [dtype, shape] = specs[i];
    const int64_t cols = shape.empty() ? 1 : std::max<int64_t>(shape.back(), 1);
    out.push_back({absl::StrCat("t", i), dtype, shape,
                   Encode(dtype, RandomFloats(NumElements(shape), i), cols)});
  }
  return out;
}

void ExpectSameTensors(const WeightSource& source, const std::vector<Stored>& tensors) {
  ASSERT_EQ(source.TensorNames().size(), tensors.size());
  for (const Stored& t : tensors) {
    absl::StatusOr<TensorView> v = source.Get(t.name);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->dtype, t.dtype) << t.name;
    EXPECT_EQ(v->shape, t.shape) << t.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v->data) % GetDTypeInfo(t.dtype).block_bytes, 0u);
    if (!t.bytes.empty()) {
      EXPECT_EQ(0, std::memcmp(v->data, t.bytes.data(), t.bytes.size()));
    }
  }
}

TEST(SafetensorsTest, RoundTripsEveryDTypeWithMetadata) {
  const std::vector<Stored> tensors = SampleTensors();
  SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  for (const Stored& t : tensors)
    ASSERT_TRUE(w.AddTensor(t.name, t.dtype, t.shape, t.bytes.data()).ok());
  const fs::path path = strata::testing::TempDir("st_roundtrip") / "model.safetensors";
  ASSERT_TRUE(w.Write(path).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  ExpectSameTensors(**file, tensors);
  EXPECT_THAT((*file)->Get("zz").status().message(), HasSubstr("no tensor named 'zz'"));
  // The header is padded so the data buffer starts 8-aligned.
  const std::string bytes = testing::ReadBytes(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
}

TEST(SafetensorsTest, WriterRejectsUnsupportedTensors) {
  SafetensorsWriter w;
  const float x[64] = {};
  EXPECT_THAT(w.AddTensor("q", DType::kQ8_0, {32}, x).message(),
              HasSubstr("cannot be stored in safetensors"));
  EXPECT_FALSE(w.AddTensor("__metadata__", DType::kF32, {1}, x).ok());
  EXPECT_FALSE(w.AddTensor("n", DType::kF32, {-1}, x).ok());
  ASSERT_TRUE(w.AddTensor("a", DType::kF32, {4}, x).ok());
  EXPECT_FALSE(w.AddTensor("a", DType::kF32, {4}, x).ok());
}

TEST(SafetensorsTest, ShardedRoundTripThroughOpenWeightSource) {
  const std::vector<Stored> tensors = SampleTensors();
  SafetensorsWriter w;
  for (const Stored& t : tensors) {
    ASSERT_TRUE(w.AddTensorOwned(t.name, t.dtype, t.shape, t.bytes).ok());
  }
  const fs::path dir = strata::testing::TempDir("st_sharded");
  ASSERT_TRUE(w.WriteSharded(dir, /*max_shard_bytes=*/40).ok());
  EXPECT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(dir / "model-00001-of-00004.safetensors"));
  auto sharded = ShardedSafetensors::Open(dir / "model.safetensors.index.json");
  ASSERT_TRUE(sharded.ok()) << sharded.status();
  EXPECT_EQ((*sharded)->shards().size(), 4u);
  ExpectSameTensors(**sharded, tensors);
  auto source = OpenWeightSource(dir);
  ASSERT_TRUE(source.ok()) << source.status();
  ExpectSameTensors(**source, tensors);
}

TEST(SafetensorsTest, ShardedIndexErrors) {
  const fs::path dir = strata::testing::TempDir("st_index");
  SafetensorsWriter w;
  const float x[4] = {1, 2, 3, 4};
  ASSERT_TRUE(w.AddTensor("a", DType::kF32, {4}, x).ok());
  ASSERT_TRUE(w.Write(dir / "s.safetensors").ok());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"weight_map": {"b": "s.safetensors"}})", "tensor 'b' is mapped to shard s.safetensors"},
      {R"({"weight_map": {"a": "../s.safetensors"}})", "weight_map['a'] must be a shard file"},
      {R"({"weight_map": {"a": 3}})", "weight_map['a'] must be a shard file"},
      {R"({"weight_map": {"a": "missing.safetensors"}})", "missing.safetensors: cannot open"},
      {R"({"metadata": {}})", "missing \"weight_map\""},
      {R"({"weight_map": )", "index is not valid JSON"},
  };
  for (const auto& [json, expected] : cases) {
    testing::WriteBytes(dir / "model.safetensors.index.json", json);
    auto source = OpenWeightSource(dir);
    ASSERT_FALSE(source.ok()) << json;
    EXPECT_THAT(source.status().message(), HasSubstr(expected)) << json;
  }
  testing::WriteBytes(dir / "model.safetensors.index.json",
                      R"({"weight_map": {"a": "s.safetensors"}})");
  auto source = OpenWeightSource(dir);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ(reinterpret_cast<const float*>((*source)->Get("a")->data)[3], 4.0f);
}

TEST(SafetensorsTest, SlicesRealData) {
  const int64_t rows = 5, cols = 6;
  const std::vector<float> values = RandomFloats(rows * cols, 9);
  const std::vector<std::byte> bf16 = Encode(DType::kBF16, values, cols);
  SafetensorsWriter w;
  ASSERT_TRUE(w.AddTensor("w", DType::kBF16, {rows, cols}, bf16.data()).ok());
  const fs::path path = strata::testing::TempDir("st_slice") / "m.safetensors";
  ASSERT_TRUE(w.Write(path).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  const TensorView v = *(*file)->Get("w")->SliceRows(1, 4)->SliceCols(2, 5);
  ASSERT_EQ(v.shape, (Shape{3, 3}));
  EXPECT_EQ(v.row_stride_bytes, cols * 2);
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t c = 0; c < 3; ++c) {
      const uint16_t h = reinterpret_cast<const uint16_t*>(v.Row(r))[c];
      EXPECT_EQ(BF16ToF32(h), BF16ToF32(F32ToBF16(values[(r + 1) * cols + c + 2])));
    }
  }
  EXPECT_FALSE((*file)->Get("w")->SliceRows(4, 6).ok());
}

// ---- Malformed files. ----

std::string FileWithHeader(const std::string& json, int64_t data_bytes, int64_t declared = -1) {
  const uint64_t len = declared >= 0 ? declared : json.size();
  return testing::ByteBuilder().Put(len).Raw(json).Raw(std::string(data_bytes, '\0')).bytes();
}

struct BadCase {
  std::string name;
  std::string bytes;
  std::string expected;
};

std::vector<BadCase> BadCases() {
  const std::string ok_entry = R"("a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  auto header = [&](const std::string& entry) { return FileWithHeader("{" + entry + "}", 16); };
  return {
      {"tiny", "abc", "too small for a safetensors header"},
      {"header_too_long", FileWithHeader("{}", 0, 1000), "header length 1000 exceeds"},
      {"header_huge", FileWithHeader("{}", 0, int64_t{1} << 62), "exceeds the file size"},
      {"bad_json", FileWithHeader("{\"a\": ", 0), "header is not valid JSON"},
      {"not_object", FileWithHeader("[1, 2]", 0), "header is not a JSON object"},
      {"entry_not_object", header(R"("a": 5)"), "tensor 'a': entry must be a JSON object"},
      {"unknown_dtype",
       header(R"("a": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]})"),
       "tensor 'a': unsupported dtype \"F8_E4M3\""},
      {"missing_dtype", header(R"("a": {"shape": [2], "data_offsets": [0, 8]})"),
       "tensor 'a': \"dtype\" must be a string"},
      {"negative_dim", header(R"("a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]})"),
       "tensor 'a': \"shape\" entries must be integers >= 0"},
      {"float_dim", header(R"("a": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]})"),
       "\"shape\" entries must be integers"},
      {"shape_overflow",
       header(
           R"("a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]})"),
       "tensor 'a': element count of [4294967296, 4294967296] overflows"},
      // The overflow gguf_fuzz found in the GGUF reader: 2^62 elements fit int64, bytes do not.
      {"byte_size_overflow",
       header(
           R"("a": {"dtype": "F32", "shape": [2, 2305843009213693952], "data_offsets": [0, 8]})"),
       "tensor 'a': byte size of [2, 2305843009213693952] overflows"},
      {"offsets_reversed", header(R"("a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]})"),
       "\"data_offsets\" must be [begin, end]"},
      {"offsets_huge",
       header(R"("a": {"dtype": "F32", "shape": [2], "data_offsets": [18446744073709551615, 0]})"),
       "\"data_offsets\" must be [begin, end]"},
      {"wrong_size", header(R"("a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]})"),
       "tensor 'a': data_offsets [0, 8) hold 8 bytes, but f32 [3] needs 12"},
      {"out_of_range", header(R"("a": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]})"),
       "tensor 'a': data_offsets [8, 24) exceed the data buffer of 16 bytes"},
      {"overlap",
       header(ok_entry + R"(, "b": {"dtype": "I8", "shape": [4], "data_offsets": [4, 8]})"),
       "tensor 'b': data_offsets [4, 8) overlap tensor 'a' [0, 8)"},
      {"bad_metadata", header(R"("__metadata__": {"x": 1})"), "\"__metadata__\" key 'x' must map"},
  };
}

class SafetensorsBadFileTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(SafetensorsBadFileTest, FailsWithSpecificMessage) {
  const fs::path path = strata::testing::TempDir("st_bad") / (GetParam().name + ".safetensors");
  testing::WriteBytes(path, GetParam().bytes);
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(file.status().message(), HasSubstr(path.string() + ": "));
  EXPECT_THAT(file.status().message(), HasSubstr(GetParam().expected));
}

INSTANTIATE_TEST_SUITE_P(Cases, SafetensorsBadFileTest, ::testing::ValuesIn(BadCases()),
                         [](const auto& p) { return p.param.name; });

TEST(OpenWeightSourceTest, PicksTheReaderFromThePath) {
  const fs::path dir = strata::testing::TempDir("ows");
  const float x[4] = {1, 2, 3, 4};
  GgufWriter g;
  ASSERT_TRUE(g.AddTensor("w", DType::kF32, {4}, x).ok());
  ASSERT_TRUE(g.Write(dir / "m.gguf").ok());
  ASSERT_TRUE(g.Write(dir / "no_extension").ok());
  SafetensorsWriter s;
  ASSERT_TRUE(s.AddTensor("w", DType::kF32, {4}, x).ok());
  fs::create_directories(dir / "hf");
  ASSERT_TRUE(s.Write(dir / "hf" / "model.safetensors").ok());
  ASSERT_TRUE(s.Write(dir / "x.safetensors").ok());
  for (const fs::path& p :
       {dir / "m.gguf", dir / "no_extension", dir / "hf", dir / "x.safetensors"}) {
    auto source = OpenWeightSource(p);
    ASSERT_TRUE(source.ok()) << p << ": " << source.status();
    EXPECT_EQ((*source)->TensorNames(), std::vector<std::string>{"w"});
    EXPECT_TRUE((*source)->Has("w"));
    EXPECT_EQ(reinterpret_cast<const float*>((*source)->Get("w")->data)[2], 3.0f);
  }
  fs::create_directories(dir / "empty");
  EXPECT_THAT(OpenWeightSource(dir / "empty").status().message(),
              HasSubstr("folder has neither model.safetensors nor"));
  EXPECT_EQ(OpenWeightSource(dir / "nothing").status().code(), absl::StatusCode::kNotFound);
  testing::WriteBytes(dir / "notes.txt", "hello");
  EXPECT_THAT(OpenWeightSource(dir / "notes.txt").status().message(), HasSubstr("not a model"));
}

}  // namespace
}  // namespace strata

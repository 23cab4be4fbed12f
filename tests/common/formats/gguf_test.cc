#include "common/formats/gguf.h"

#include <functional>

#include "absl/strings/str_cat.h"
#include "common/formats/gguf_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/formats/format_test_util.h"
#include "tests/testing/shared_data.h"

namespace strata {
namespace {

using testing::Encode;
using ::testing::HasSubstr;
using testing::RandomFloats;
using testing::RawGguf;
using testing::RawGgufTensor;

struct DTypeCase {
  DType dtype;
  Shape shape;
};

TEST(GgufTest, RoundTripsEveryDTypeAndRank) {
  const std::vector<DTypeCase> cases = {
      {DType::kF32, {7}},      {DType::kF16, {3, 5}},         {DType::kBF16, {2, 3, 4}},
      {DType::kQ8_0, {4, 64}}, {DType::kQ4_0, {2, 2, 2, 32}}, {DType::kF32, {1, 1, 1, 3}},
  };
  GgufWriter writer;
  std::vector<std::vector<std::byte>> data;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Shape& shape = cases[i].shape;
    data.push_back(Encode(cases[i].dtype, RandomFloats(NumElements(shape), i), shape.back()));
    ASSERT_TRUE(
        writer.AddTensor(absl::StrCat("t", i), cases[i].dtype, shape, data.back().data()).ok());
  }
  const std::string path = strata::testing::TempDir("gguf_roundtrip") / "m.gguf";
  ASSERT_TRUE(writer.Write(path).ok());
  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->version(), 3u);
  ASSERT_EQ((*file)->TensorNames().size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    absl::StatusOr<TensorView> view = (*file)->Get(absl::StrCat("t", i));
    ASSERT_TRUE(view.ok()) << view.status();
    EXPECT_EQ(view->dtype, cases[i].dtype);
    EXPECT_EQ(view->shape, cases[i].shape);
    EXPECT_TRUE(view->IsContiguous());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(view->data) % 32, 0u);
    ASSERT_EQ(0, std::memcmp(view->data, data[i].data(), data[i].size())) << i;
  }
}

TEST(GgufTest, RoundTripsEveryMetadataType) {
  GgufWriter w(/*alignment=*/64);
  w.SetUint8("u8", 200);
  w.SetInt8("i8", -100);
  w.SetUint16("u16", 60000);
  w.SetInt16("i16", -30000);
  w.SetUint32("u32", 4000000000u);
  w.SetInt32("i32", -2000000000);
  w.SetUint64("u64", uint64_t{1} << 62);
  w.SetInt64("i64", -(int64_t{1} << 62));
  w.SetFloat32("f32", 0.5f);
  w.SetFloat64("f64", 1e300);
  w.SetBool("yes", true);
  w.SetBool("no", false);
  w.SetString("general.architecture", "llama");
  w.SetStringArray("tokens", {"a", "", "ccc"});
  w.SetIntArray("ints", {1, -2, 3});
  w.SetIntArray("bytes", {0, 255}, GgufValueType::kUint8);
  w.SetFloat32Array("floats", {0.25, -1.5});
  w.SetBoolArray("bools", {true, false});
  w.SetString("general.architecture", "qwen2");  // replaces in place
  const std::vector<float> values = RandomFloats(64, 1);
  ASSERT_TRUE(w.AddTensor("w", DType::kF32, {64}, values.data()).ok());
  const std::string path = strata::testing::TempDir("gguf_meta") / "m.gguf";
  ASSERT_TRUE(w.Write(path).ok());

  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& file = **f;
  EXPECT_EQ(file.alignment(), 64);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(file.Get("w")->data) % 64, 0u);
  EXPECT_EQ(*file.GetInt("u8").value(), 200);
  EXPECT_EQ(*file.GetInt("i8").value(), -100);
  EXPECT_EQ(*file.GetInt("u16").value(), 60000);
  EXPECT_EQ(*file.GetInt("i16").value(), -30000);
  EXPECT_EQ(*file.GetInt("u32").value(), 4000000000);
  EXPECT_EQ(*file.GetInt("i32").value(), -2000000000);
  EXPECT_EQ(*file.GetInt("u64").value(), int64_t{1} << 62);
  EXPECT_EQ(*file.GetInt("i64").value(), -(int64_t{1} << 62));
  EXPECT_EQ(*file.GetFloat("f32").value(), 0.5);
  EXPECT_EQ(*file.GetFloat("f64").value(), 1e300);
  EXPECT_EQ(*file.GetFloat("u8").value(), 200.0);  // ints widen to float
  EXPECT_TRUE(*file.GetBool("yes").value());
  EXPECT_FALSE(*file.GetBool("no").value());
  EXPECT_EQ(*file.GetString("general.architecture").value(), "qwen2");
  EXPECT_EQ(*file.GetStringArray("tokens").value(), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(*file.GetIntArray("ints").value(), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(*file.GetIntArray("bytes").value(), (std::vector<int64_t>{0, 255}));
  EXPECT_EQ(*file.GetFloatArray("floats").value(), (std::vector<double>{0.25, -1.5}));
  EXPECT_EQ(*file.GetFloatArray("ints").value(), (std::vector<double>{1, -2, 3}));
  const auto& bools =
      std::get<std::vector<bool>>(std::get<GgufValue::Array>(file.metadata().at("bools").value));
  EXPECT_EQ(bools, (std::vector<bool>{true, false}));
  EXPECT_EQ(file.metadata().at("u16").type, static_cast<uint32_t>(GgufValueType::kUint16));
  EXPECT_EQ(file.metadata().at("bytes").array_type, static_cast<uint32_t>(GgufValueType::kUint8));
  EXPECT_FALSE(file.GetInt("missing").value().has_value());
  absl::StatusOr<std::optional<int64_t>> wrong = file.GetInt("general.architecture");
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.status().message(), HasSubstr("'general.architecture': expected an integer"));
  EXPECT_THAT(file.Get("nope").status().message(), HasSubstr("no tensor named 'nope'"));
}

TEST(GgufTest, CopiesMetadataThroughSetValue) {
  GgufWriter a;
  a.SetIntArray("shorts", {-1, 2}, GgufValueType::kInt16);
  a.SetFloat64("x", 2.5);
  const std::filesystem::path dir = strata::testing::TempDir("gguf_copy");
  ASSERT_TRUE(a.Write(dir / "a.gguf").ok());
  auto first = GgufFile::Open(dir / "a.gguf");
  ASSERT_TRUE(first.ok());
  GgufWriter b;
  for (const auto& [key, value] : (*first)->metadata()) b.SetValue(key, value);
  ASSERT_TRUE(b.Write(dir / "b.gguf").ok());
  EXPECT_EQ(testing::ReadBytes(dir / "a.gguf"), testing::ReadBytes(dir / "b.gguf"));

  GgufWriter bad;
  GgufValue v;
  v.value = std::string("text");
  v.type = static_cast<uint32_t>(GgufValueType::kUint32);
  bad.SetValue("k", v);
  EXPECT_THAT(bad.Write(dir / "bad.gguf").message(), HasSubstr("'k'"));
  EXPECT_FALSE(std::filesystem::exists(dir / "bad.gguf"));
}

TEST(GgufTest, StreamsTensorsFromProducers) {
  const std::vector<float> values = RandomFloats(4 * 32, 3);
  GgufWriter w;
  ASSERT_TRUE(w.AddTensorProducer("q", DType::kQ8_0, {4, 32}, [&](ChunkWriter write) {
                 std::vector<std::byte> row(ElementsToBytes(DType::kQ8_0, 32));
                 for (int r = 0; r < 4; ++r) {
                   QuantizeRow(DType::kQ8_0, values.data() + r * 32, row.data(), 32);
                   absl::Status s = write(row.data(), row.size());
                   if (!s.ok()) return s;
                 }
                 return absl::OkStatus();
               }).ok());
  const std::filesystem::path dir = strata::testing::TempDir("gguf_stream");
  ASSERT_TRUE(w.Write(dir / "m.gguf").ok());
  auto file = GgufFile::Open(dir / "m.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  const TensorView q = *(*file)->Get("q");
  std::vector<float> back(4 * 32);
  DequantizeRow(DType::kQ8_0, q.data, back.data(), 4 * 32);
  for (size_t i = 0; i < back.size(); ++i) EXPECT_NEAR(back[i], values[i], 0.05f);

  GgufWriter short_writer;
  ASSERT_TRUE(short_writer
                  .AddTensorProducer("s", DType::kF32, {8},
                                     [](ChunkWriter write) { return write("abcd", 4); })
                  .ok());
  EXPECT_THAT(short_writer.Write(dir / "short.gguf").message(),
              HasSubstr("producer wrote 4 bytes, expected 32"));
}

TEST(GgufTest, WriterRejectsInvalidTensors) {
  GgufWriter w;
  const float x[64] = {};
  EXPECT_FALSE(w.AddTensor("a", DType::kQ4_0, {2, 16}, x).ok());         // not whole blocks
  EXPECT_FALSE(w.AddTensor("b", DType::kF32, {0, 4}, x).ok());           // zero dim
  EXPECT_FALSE(w.AddTensor("c", DType::kF32, {1, 1, 1, 1, 1}, x).ok());  // 5 dims
  EXPECT_FALSE(w.AddTensor("d", DType::kI32, {4}, x).ok());              // no GGUF type
  ASSERT_TRUE(w.AddTensor("e", DType::kF32, {4}, x).ok());
  EXPECT_EQ(w.AddTensor("e", DType::kF32, {4}, x).code(), absl::StatusCode::kAlreadyExists);
}

TEST(GgufTest, SlicesRealQuantizedData) {
  const int64_t rows = 6, cols = 96;
  const std::vector<float> values = RandomFloats(rows * cols, 4);
  const std::vector<std::byte> q = Encode(DType::kQ4_0, values, cols);
  GgufWriter w;
  ASSERT_TRUE(w.AddTensor("w", DType::kQ4_0, {rows, cols}, q.data()).ok());
  ASSERT_TRUE(w.AddTensor("f", DType::kF32, {rows, cols}, values.data()).ok());
  const std::filesystem::path path = strata::testing::TempDir("gguf_slice") / "m.gguf";
  ASSERT_TRUE(w.Write(path).ok());
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok());
  const TensorView full = *(*file)->Get("w");
  const TensorView part = *full.SliceRows(2, 5)->SliceCols(32, 96);
  EXPECT_EQ(part.shape, (Shape{3, 64}));
  EXPECT_FALSE(part.IsContiguous());
  for (int64_t r = 0; r < 3; ++r) {
    std::vector<float> got(64), want(cols);
    DequantizeRow(DType::kQ4_0, part.Row(r), got.data(), 64);
    DequantizeRow(DType::kQ4_0, full.Row(r + 2), want.data(), cols);
    for (int c = 0; c < 64; ++c) EXPECT_EQ(got[c], want[c + 32]);
  }
  EXPECT_FALSE(full.SliceCols(16, 32).ok());  // not block-aligned
  const TensorView f = *(*file)->Get("f");
  const TensorView fs = *f.SliceCols(5, 7);
  EXPECT_EQ(reinterpret_cast<const float*>(fs.Row(4))[1], values[4 * cols + 6]);
}

// ---- Malformed files: each names the file, the field at fault, and what was expected. ----

RawGgufTensor Tensor(std::string name, std::vector<int64_t> ne, uint32_t type = 0,
                     uint64_t offset = 0) {
  return RawGgufTensor{std::move(name), std::move(ne), type, offset};
}

RawGguf ValidRaw() {
  RawGguf g;
  g.kvs = {RawGguf::KvString("general.architecture", "llama")};
  g.tensors = {Tensor("a", {8}), Tensor("b", {4, 2}, 0, 32)};
  g.data_bytes = 64;
  return g;
}

struct BadCase {
  std::string name;
  std::function<std::string()> bytes;
  std::vector<std::string> expected;  // substrings of the message
};

std::vector<BadCase> BadCases() {
  auto with = [](std::function<void(RawGguf&)> edit) {
    return [edit] {
      RawGguf g = ValidRaw();
      edit(g);
      return g.Build();
    };
  };
  using T = GgufValueType;
  const std::string u64_max = testing::ByteBuilder().Put(~uint64_t{0}).bytes();
  return {
      {"empty", [] { return std::string(); }, {"truncated at byte 0", "the magic"}},
      {"bad_magic", with([](RawGguf& g) { g.magic = 0x46554746; }), {"not a GGUF file"}},
      {"version1", with([](RawGguf& g) { g.version = 1; }), {"version 1 is not supported"}},
      {"version4", with([](RawGguf& g) { g.version = 4; }), {"unsupported GGUF version 4"}},
      {"big_endian", with([](RawGguf& g) { g.version = 0x03000000; }), {"big-endian"}},
      {"huge_tensor_count",
       with([](RawGguf& g) { g.tensor_count = uint64_t{1} << 60; }),
       {"tensor_count: count 1152921504606846976 cannot fit"}},
      {"huge_kv_count", with([](RawGguf& g) { g.kv_count = ~uint64_t{0}; }), {"kv_count: count"}},
      {"string_too_long",
       with([](RawGguf& g) { g.kvs = {testing::ByteBuilder().Put<uint64_t>(1 << 20).bytes()}; }),
       {"metadata key #0: string length 1048576", "exceeds"}},
      {"truncated_header",
       [] { return ValidRaw().Build().substr(0, 140); },
       {"truncated at byte 135 while reading tensor 'b' offset"}},
      {"duplicate_key",
       with([](RawGguf& g) { g.kvs.push_back(g.kvs[0]); }),
       {"key 'general.architecture': duplicate metadata key"}},
      {"unknown_value_type",
       with([](RawGguf& g) { g.kvs = {RawGguf::Kv("k", static_cast<T>(13), "")}; }),
       {"key 'k': unknown value type 13"}},
      {"nested_array",
       with([](RawGguf& g) {
         g.kvs = {RawGguf::Kv("k", T::kArray,
                              testing::ByteBuilder().Put<uint32_t>(9).Put<uint64_t>(1).bytes())};
       }),
       {"key 'k': nested arrays are not supported"}},
      {"huge_array",
       with([](RawGguf& g) {
         g.kvs = {
             RawGguf::Kv("k", T::kArray,
                         testing::ByteBuilder().Put<uint32_t>(8).Put<uint64_t>(1 << 30).bytes())};
       }),
       {"array key 'k': count 1073741824 cannot fit"}},
      {"bad_bool",
       with([](RawGguf& g) { g.kvs = {RawGguf::Kv("k", T::kBool, "\x02")}; }),
       {"value of key 'k': bool byte is 2 (expected 0 or 1)"}},
      {"u64_too_big",
       with([u64_max](RawGguf& g) { g.kvs = {RawGguf::Kv("k", T::kUint64, u64_max)}; }),
       {"value of key 'k': uint64 value 18446744073709551615 exceeds"}},
      {"bad_alignment",
       with([](RawGguf& g) { g.kvs = {RawGguf::KvU32("general.alignment", 24)}; }),
       {"key 'general.alignment': alignment 24 is not a power of two"}},
      {"alignment_string",
       with([](RawGguf& g) { g.kvs = {RawGguf::KvString("general.alignment", "32")}; }),
       {"key 'general.alignment': expected an unsigned integer"}},
      {"five_dims",
       with([](RawGguf& g) {
         g.tensors[1].ne = {1, 1, 1, 1, 1};
       }),
       {"tensor 'b': n_dims is 5 (expected 1..4)"}},
      {"zero_dims", with([](RawGguf& g) { g.tensors[1].ne = {}; }), {"tensor 'b': n_dims is 0"}},
      {"zero_dim",
       with([](RawGguf& g) {
         g.tensors[1].ne = {4, 0};
       }),
       {"tensor 'b': ne[1] is 0 (expected > 0)"}},
      {"negative_dim",
       with([](RawGguf& g) { g.tensors[0].ne = {-8}; }),
       {"tensor 'a': ne[0] is -8"}},
      {"element_overflow",
       with([](RawGguf& g) {
         g.tensors[0].ne = {int64_t{1} << 62, 8};
       }),
       {"tensor 'a': element count of [8, 4611686018427387904] overflows"}},
      // Found by gguf_fuzz: 2^62 f32 elements fit int64, their bytes do not.
      {"byte_size_overflow",
       with([](RawGguf& g) {
         g.tensors[0].ne = {int64_t{1} << 61, 2};
         g.tensors[0].type = 0;
       }),
       {"tensor 'a': byte size of [2, 2305843009213693952] f32 overflows int64"}},
      {"unsupported_type",
       with([](RawGguf& g) { g.tensors[1].type = 12; }),
       {"tensor 'b': unsupported ggml type 12"}},
      {"not_whole_blocks",
       with([](RawGguf& g) {
         g.tensors[1].ne = {48, 1};
         g.tensors[1].type = 8;
       }),
       {"tensor 'b': row length 48 is not a multiple of q8_0 block size 32"}},
      {"data_out_of_file",
       with([](RawGguf& g) { g.tensors[1].offset = 64; }),
       {"tensor 'b': data [", ") exceeds file size"}},
      {"offset_overflow",
       with([](RawGguf& g) { g.tensors[1].offset = uint64_t{1} << 63; }),
       {"tensor 'b': offset 9223372036854775808"}},
      {"offset_near_max",
       with([](RawGguf& g) { g.tensors[1].offset = (uint64_t{1} << 63) - 32; }),
       {"tensor 'b': data offset", "overflows"}},
      {"misaligned",
       with([](RawGguf& g) { g.tensors[1].offset = 40; }),
       {"tensor 'b': offset 40 is not a multiple of the alignment 32"}},
      {"overlap",
       with([](RawGguf& g) {
         g.tensors[1].ne = {16};  // b: [0, 64), a: [32, 64)
         g.tensors[0].offset = 32;
         g.tensors[1].offset = 0;
       }),
       {"tensor 'a': data at offset 32 overlaps tensor 'b'"}},
      {"duplicate_tensor",
       with([](RawGguf& g) { g.tensors[1].name = g.tensors[0].name; }),
       {"tensor 'a': duplicate tensor name"}},
  };
}

class GgufBadFileTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(GgufBadFileTest, FailsWithSpecificMessage) {
  const std::filesystem::path path =
      strata::testing::TempDir("gguf_bad") / (GetParam().name + ".gguf");
  testing::WriteBytes(path, GetParam().bytes());
  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(file.status().message(), HasSubstr(path.string() + ": "));
  for (const std::string& s : GetParam().expected) {
    EXPECT_THAT(file.status().message(), HasSubstr(s));
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, GgufBadFileTest, ::testing::ValuesIn(BadCases()),
                         [](const auto& p) { return p.param.name; });

TEST(GgufTest, AcceptsValidRawFileAndVersion2) {
  for (uint32_t version : {2u, 3u}) {
    RawGguf g = ValidRaw();
    g.version = version;
    const std::filesystem::path path = strata::testing::TempDir("gguf_raw") / "ok.gguf";
    testing::WriteBytes(path, g.Build());
    auto file = GgufFile::Open(path);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ((*file)->version(), version);
    EXPECT_EQ((*file)->Get("b")->shape, (Shape{2, 4}));  // ne reversed
  }
}

}  // namespace
}  // namespace strata

// The embedded default model: deterministic, loadable, tokenizable, and it generates.
#include "worker/model/synthetic_model.h"

#include <fstream>
#include <iterator>

#include "coordinator/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"
#include "tests/worker/model/model_testing.h"

namespace strata {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(SyntheticModelTest, SameSpecGivesSameBytes) {
  auto spec = SyntheticPreset("tiny");
  ASSERT_TRUE(spec.ok());
  const auto dir = testing::TempDir("synth");
  ASSERT_TRUE(WriteSyntheticModel(*spec, (dir / "a.gguf").string()).ok());
  ASSERT_TRUE(WriteSyntheticModel(*spec, (dir / "b.gguf").string()).ok());
  EXPECT_EQ(ReadAll((dir / "a.gguf").string()), ReadAll((dir / "b.gguf").string()));
  spec->seed = 2;
  ASSERT_TRUE(WriteSyntheticModel(*spec, (dir / "c.gguf").string()).ok());
  EXPECT_NE(ReadAll((dir / "a.gguf").string()), ReadAll((dir / "c.gguf").string()));
}

TEST(SyntheticModelTest, DefaultModelLoadsTokenizesAndGenerates) {
  const auto dir = testing::TempDir("cache");
  setenv("STRATA_CACHE_DIR", dir.c_str(), 1);
  auto path = EnsureDefaultModel();
  ASSERT_TRUE(path.ok()) << path.status();
  auto tok = tokenizer::LoadTokenizer(*path);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto ids = (*tok)->Encode("hello world", true);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->front(), 1);  // BOS
  auto text = (*tok)->Decode(*ids, true);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "hello world");

  auto a = testing::GreedyIds(*path, *ids, 8);
  auto b = testing::GreedyIds(*path, *ids, 8);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 8u);
  EXPECT_EQ(*a, *b);  // greedy is deterministic
}

TEST(SyntheticModelTest, UnknownPresetIsNamed) {
  auto spec = SyntheticPreset("huge");
  EXPECT_NE(spec.status().message().find("huge"), std::string::npos);
}

}  // namespace
}  // namespace strata

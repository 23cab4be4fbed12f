// The embedded default model: deterministic, loadable, tokenizable, and it generates.
#include "worker/model/synthetic_model.h"

#include <fstream>
#include <iterator>

#include "coordinator/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"
#include "worker/model/generate.h"
#include "worker/model/model_runner.h"

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

  std::unique_ptr<Backend> backend = MakeCpuBackend(2);
  auto model = LoadModel(*path, *backend, {});
  ASSERT_TRUE(model.ok()) << model.status();
  GenerateOptions options;
  options.max_new_tokens = 8;
  options.stop_at_eos = false;
  auto a = Generate(**model, *ids, options);
  auto b = Generate(**model, *ids, options);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->tokens.size(), 8u);
  EXPECT_EQ(a->tokens, b->tokens);  // greedy is deterministic
}

TEST(SyntheticModelTest, UnknownPresetIsNamed) {
  auto spec = SyntheticPreset("huge");
  EXPECT_NE(spec.status().message().find("huge"), std::string::npos);
}

}  // namespace
}  // namespace strata

// Our SentencePiece BPE tokenizer against the outputs of the reference implementations:
// llama.cpp's vectors for its llama-spm vocabulary GGUF, and SentencePiece's own outputs for
// real tokenizer.model files (tokenizers/expected/*-spm.out).
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include "coordinator/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/coordinator/tokenizer/vocab_vectors.h"
#include "tests/testing/shared_data.h"

namespace strata::tokenizer {
namespace {

using testing::ExpectReferenceIds;
using testing::ReadVocabCases;

struct VectorSet {
  std::string name;
  std::string model;     // relative to shared data
  std::string inp;
  std::string expected;
};

class SpmVectorsTest : public ::testing::TestWithParam<VectorSet> {};

TEST_P(SpmVectorsTest, EveryCaseMatchesReference) {
  const VectorSet& set = GetParam();
  STRATA_SHARED_DATA_OR_SKIP(model, set.model);
  STRATA_SHARED_DATA_OR_SKIP(inp, set.inp);
  STRATA_SHARED_DATA_OR_SKIP(expected, set.expected);
  auto tokenizer = LoadTokenizer(model.string());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const auto cases = ReadVocabCases(inp, expected);
  ASSERT_EQ(cases.size(), 46u);
  const int matched = ExpectReferenceIds(**tokenizer, cases, set.name);
  EXPECT_EQ(matched, static_cast<int>(cases.size())) << set.name;
}

INSTANTIATE_TEST_SUITE_P(
    Reference, SpmVectorsTest,
    ::testing::Values(
        VectorSet{"llamacpp_llama_spm_gguf", "tokenizers/llamacpp/ggml-vocab-llama-spm.gguf",
                  "tokenizers/llamacpp/ggml-vocab-llama-spm.gguf.inp",
                  "tokenizers/llamacpp/ggml-vocab-llama-spm.gguf.out"},
        VectorSet{"llama2_model", "tokenizers/sentencepiece/llama2.model",
                  "tokenizers/expected/vocab-test.inp", "tokenizers/expected/llama2-spm.out"},
        VectorSet{"mistral_v1_model", "tokenizers/sentencepiece/mistral-v1.model",
                  "tokenizers/expected/vocab-test.inp",
                  "tokenizers/expected/mistral-v1-spm.out"},
        VectorSet{"mistral_v3_model", "tokenizers/sentencepiece/mistral-v3.model",
                  "tokenizers/expected/vocab-test.inp",
                  "tokenizers/expected/mistral-v3-spm.out"},
        VectorSet{"llamacpp_phi3_gguf", "tokenizers/llamacpp/ggml-vocab-phi-3.gguf",
                  "tokenizers/llamacpp/ggml-vocab-phi-3.gguf.inp",
                  "tokenizers/llamacpp/ggml-vocab-phi-3.gguf.out"},
        VectorSet{"tok512_model", "tokenizers/sentencepiece/tok512.model",
                  "tokenizers/expected/vocab-test.inp", "tokenizers/expected/tok512-spm.out"}),
    [](const ::testing::TestParamInfo<VectorSet>& param_info) { return param_info.param.name; });

TEST(LoadTokenizerTest, PrefersTokenizerJsonOverTokenizerModel) {
  // A directory with both files loads tokenizer.json, as transformers does: ids follow the
  // tokenizer.json vectors (transformers.js), not the SentencePiece model beside it.
  const std::filesystem::path dir = testing::HfTokenizerDir("gemma3");
  STRATA_SHARED_DATA_OR_SKIP(spm, "tokenizers/sentencepiece/llama2.model");
  if (dir.empty()) GTEST_SKIP() << "shared data tokenizers/hf/gemma3 not found";
  std::filesystem::copy_file(spm, dir / "tokenizer.model");
  auto tokenizer = LoadTokenizer(dir.string());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->vocab_size(), 262145);
}

// Found by tokenizer_json_fuzz: one added token id of 2^31 - 1 sized the id tables (14 GB, and
// id + 1 overflowed). The generated fuzz seed, loadable as it is, with that one id changed.
TEST(LoadTokenizerTest, SparseHugeTokenIdsAreRefused) {
  std::ifstream seed(std::filesystem::path(STRATA_FUZZ_SEEDS) / "tokenizer_json_fuzz/spm_bpe.json");
  ASSERT_TRUE(seed.good());
  std::string json((std::istreambuf_iterator<char>(seed)), std::istreambuf_iterator<char>());
  const std::filesystem::path dir = ::strata::testing::TempDir("sparse_ids");
  std::ofstream(dir / "tokenizer.json") << json;
  ASSERT_TRUE(LoadTokenizer(dir.string()).ok());
  const std::string from = R"({"id": 2, "content": "</s>")";
  ASSERT_NE(json.find(from), std::string::npos);
  json.replace(json.find(from), from.size(), R"({"id": 2147483647, "content": "</s>")");
  std::ofstream(dir / "tokenizer.json", std::ios::trunc) << json;
  auto tokenizer = LoadTokenizer(dir.string());
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_NE(tokenizer.status().message().find("ids must be dense"), std::string::npos)
      << tokenizer.status();
}

TEST(LoadTokenizerTest, MissingPathIsNotFoundNamingIt) {
  auto tokenizer = LoadTokenizer("/nonexistent/model-dir");
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(tokenizer.status().message().find("/nonexistent/model-dir"), std::string::npos);
}

}  // namespace
}  // namespace strata::tokenizer

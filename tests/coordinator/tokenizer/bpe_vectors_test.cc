// BpeTokenizer against the reference implementations' outputs:
//  * llama.cpp's test vectors (produced by Hugging Face tokenizers when llama.cpp added each
//    vocabulary) for its GGUF "gpt2" vocabularies, and for the vector-only sets whose
//    tokenizer.json is in shared data (llama-bpe <-> hf/llama3, qwen2 and deepseek-r1-qwen <->
//    hf/qwen3);
//  * transformers.js outputs for tokenizers/expected/vocab-test.inp with the hf/ tokenizers
//    (produced with add_special_tokens=false: no BOS on any line).
#include <iostream>
#include <string>

#include "coordinator/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/coordinator/tokenizer/vocab_vectors.h"
#include "tests/testing/shared_data.h"

namespace strata::tokenizer {
namespace {

using testing::HfTokenizerDir;
using testing::ExpectReferenceIds;
using testing::ReadVocabCases;

struct VectorSet {
  std::string name;
  std::string gguf;  // relative to shared data, or empty
  std::string hf;    // tokenizers/hf/<hf>, or empty
  std::string inp;   // relative to shared data
  std::string expected;
};

class BpeVectorsTest : public ::testing::TestWithParam<VectorSet> {};

TEST_P(BpeVectorsTest, EveryCaseMatchesReference) {
  const VectorSet& set = GetParam();
  STRATA_SHARED_DATA_OR_SKIP(inp, set.inp);
  STRATA_SHARED_DATA_OR_SKIP(expected, set.expected);
  std::string model;
  if (!set.gguf.empty()) {
    STRATA_SHARED_DATA_OR_SKIP(gguf, set.gguf);
    model = gguf.string();
  } else {
    model = HfTokenizerDir(set.hf).string();
    if (model.empty()) GTEST_SKIP() << "shared data tokenizers/hf/" << set.hf << " not found";
  }
  auto tokenizer = LoadTokenizer(model);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const auto cases = ReadVocabCases(inp, expected);
  ASSERT_FALSE(cases.empty());
  const int matched = ExpectReferenceIds(**tokenizer, cases, set.name);
  EXPECT_EQ(matched, static_cast<int>(cases.size())) << set.name;
  std::cout << "[ vectors  ] " << set.name << ": " << matched << "/" << cases.size() << " match\n";
}

VectorSet Gguf(const std::string& name) {
  const std::string base = "tokenizers/llamacpp/ggml-vocab-" + name + ".gguf";
  std::string id = "gguf_" + name;
  for (char& ch : id) {
    if (ch == '-') ch = '_';
  }
  return {id, base, "", base + ".inp", base + ".out"};
}

VectorSet HfWithLlamaCppVectors(const std::string& vectors, const std::string& hf) {
  const std::string base = "tokenizers/llamacpp/ggml-vocab-" + vectors + ".gguf";
  std::string id = "hf_" + hf + "_llamacpp_" + vectors;
  for (char& ch : id) {
    if (ch == '-') ch = '_';
  }
  return {id, "", hf, base + ".inp", base + ".out"};
}

VectorSet HfWithTransformersJs(const std::string& hf) {
  return {"hf_" + hf + "_transformersjs", "", hf, "tokenizers/expected/vocab-test.inp",
          "tokenizers/expected/" + hf + "-transformersjs.out"};
}

INSTANTIATE_TEST_SUITE_P(
    Reference, BpeVectorsTest,
    ::testing::Values(Gguf("gpt-2"), Gguf("falcon"), Gguf("deepseek-coder"), Gguf("deepseek-llm"),
                      HfWithLlamaCppVectors("llama-bpe", "llama3"),
                      HfWithLlamaCppVectors("qwen2", "qwen3"),
                      HfWithLlamaCppVectors("deepseek-r1-qwen", "qwen3"),
                      HfWithTransformersJs("llama3"), HfWithTransformersJs("qwen3"),
                      HfWithTransformersJs("gemma3")),
    [](const ::testing::TestParamInfo<VectorSet>& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace strata::tokenizer

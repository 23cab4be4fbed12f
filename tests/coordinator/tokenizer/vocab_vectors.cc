#include "tests/coordinator/tokenizer/vocab_vectors.h"

#include <fstream>
#include <iostream>
#include <sstream>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"

namespace strata::tokenizer::testing {

std::string ReadTextFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return std::move(buffer).str();
}

std::vector<VocabCase> ReadVocabCases(const std::filesystem::path& inp,
                                      const std::filesystem::path& out) {
  const absl::string_view kSeparator = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts = absl::StrSplit(ReadTextFile(inp), absl::ByString(kSeparator));
  if (!texts.empty() && texts.back().empty()) texts.pop_back();  // after the last separator
  std::vector<std::string> lines = absl::StrSplit(ReadTextFile(out), '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  EXPECT_EQ(texts.size(), lines.size()) << inp << " vs " << out;
  std::vector<VocabCase> cases;
  for (size_t i = 0; i < std::min(texts.size(), lines.size()); ++i) {
    VocabCase c{texts[i], {}};
    for (absl::string_view field : absl::StrSplit(lines[i], ' ', absl::SkipEmpty())) {
      int32_t id = 0;
      EXPECT_TRUE(absl::SimpleAtoi(field, &id)) << out << " line " << i + 1 << ": " << field;
      c.ids.push_back(id);
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

std::filesystem::path HfTokenizerDir(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path json =
      ::strata::testing::SharedDataPath("tokenizers/hf/" + name + "/tokenizer.json");
  const fs::path config =
      ::strata::testing::SharedDataPath("tokenizers/hf/" + name + "/tokenizer_config.json");
  if (json.empty() || config.empty()) return {};
  const fs::path dir = ::strata::testing::TempDir("hf-" + name);
  fs::copy_file(json, dir / "tokenizer.json");
  fs::copy_file(config, dir / "tokenizer_config.json");
  return dir;
}

int ExpectReferenceIds(const Tokenizer& tokenizer, const std::vector<VocabCase>& cases,
                       const std::string& name) {
  const size_t bound = tokenizer.max_bytes_per_token();
  int matched = 0;
  for (const VocabCase& c : cases) {
    auto ids = tokenizer.Encode(c.text, /*add_special=*/false);
    EXPECT_TRUE(ids.ok()) << ids.status();
    if (!ids.ok()) continue;
    EXPECT_EQ(*ids, c.ids) << name << " text: '" << c.text << "'";
    if (*ids == c.ids) ++matched;
    EXPECT_GE(c.ids.size() * bound, bound > 0 ? c.text.size() : 0) << "text: '" << c.text << "'";
  }
  std::cout << "[ bound    ] " << name << ": at most " << bound << " bytes per token\n";
  return matched;
}

}  // namespace strata::tokenizer::testing

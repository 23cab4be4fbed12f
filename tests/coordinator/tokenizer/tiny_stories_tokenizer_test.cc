// The TinyStories 260K model's tokenizer, from the HF directory (tokenizer.model) and from the
// GGUF, against the golden prompts and continuations (golden/stories260K.jsonl).
#include <sstream>
#include <string>
#include <vector>

#include "boost/json.hpp"
#include "coordinator/tokenizer/incremental_detokenizer.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/coordinator/tokenizer/vocab_vectors.h"
#include "tests/testing/shared_data.h"

namespace strata::tokenizer {
namespace {

struct GoldenRecord {
  std::string prompt;
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> greedy_ids;
  std::string text;
};

std::vector<int32_t> Ids(const boost::json::value& v) {
  std::vector<int32_t> ids;
  for (const auto& id : v.as_array()) ids.push_back(static_cast<int32_t>(id.as_int64()));
  return ids;
}

std::vector<GoldenRecord> ReadGolden(const std::filesystem::path& path) {
  std::vector<GoldenRecord> records;
  std::istringstream lines(testing::ReadTextFile(path));
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    const boost::json::object obj = boost::json::parse(line).as_object();
    records.push_back({std::string(obj.at("prompt").as_string()), Ids(obj.at("prompt_ids")),
                       Ids(obj.at("greedy_ids")), std::string(obj.at("text").as_string())});
  }
  return records;
}

class Stories260KTokenizerTest : public ::testing::TestWithParam<std::string> {};

TEST_P(Stories260KTokenizerTest, MatchesGoldenPromptsAndContinuations) {
  STRATA_SHARED_DATA_OR_SKIP(model, GetParam());
  STRATA_SHARED_DATA_OR_SKIP(golden, "golden/stories260K.jsonl");
  auto tokenizer = LoadTokenizer(model.string());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const Tokenizer& tok = **tokenizer;
  EXPECT_EQ(tok.vocab_size(), 512);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_TRUE(tok.eos_ids().contains(2));

  const std::vector<GoldenRecord> records = ReadGolden(golden);
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records[0].prompt, "Once upon a time");
  EXPECT_EQ(records[0].prompt_ids, (std::vector<int32_t>{1, 403, 407, 261, 378}));
  for (const GoldenRecord& r : records) {
    SCOPED_TRACE(r.prompt);
    EXPECT_EQ(tok.Encode(r.prompt, /*add_special=*/true).value(), r.prompt_ids);

    // The golden text is the decode of prompt + continuation, BOS/EOS ignored.
    std::vector<int32_t> all = r.prompt_ids;
    all.insert(all.end(), r.greedy_ids.begin(), r.greedy_ids.end());
    EXPECT_EQ(tok.Decode(all, /*skip_special=*/true).value(), r.text);

    // Streaming the continuation after the prompt gives the rest of the text.
    const std::string prompt_text = tok.Decode(r.prompt_ids, /*skip_special=*/true).value();
    ASSERT_TRUE(r.text.starts_with(prompt_text));
    IncrementalDetokenizer detok(tok, /*skip_special=*/true, r.prompt_ids);
    std::string streamed;
    for (int32_t id : r.greedy_ids) streamed += detok.Add(id).value();
    streamed += detok.Finish().value();
    EXPECT_EQ(prompt_text + streamed, r.text);
  }
}

INSTANTIATE_TEST_SUITE_P(Sources, Stories260KTokenizerTest,
                         ::testing::Values("models/stories260K/hf",
                                           "models/stories260K/stories260K.gguf"));

}  // namespace
}  // namespace strata::tokenizer

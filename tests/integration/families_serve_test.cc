// Every model family through `strata serve` as a user runs it, split over two tensor-parallel
// worker processes (experts spread over them too, for the mixture-of-experts families): the
// greedy continuation of each fixture's first golden case, asked for over HTTP as token ids,
// must be exactly the reference's (llama.cpp, or the float64 reference for Qwen3).
#include <string>
#include <vector>

#include "boost/json.hpp"
#include "gtest/gtest.h"
#include "tests/testing/http_client.h"
#include "tests/testing/serve_process.h"
#include "tests/testing/shared_data.h"
#include "tests/worker/model/golden.h"

namespace strata {
namespace {

namespace json = boost::json;

struct ServeCase {
  std::string family;
  std::vector<std::string> flags;
};

class FamiliesServeTest : public ::testing::TestWithParam<ServeCase> {};

TEST_P(FamiliesServeTest, GreedyIdsMatchTheGolden) {
  const ServeCase& c = GetParam();
  STRATA_SHARED_DATA_OR_SKIP(model, "fixtures/" + c.family + "/hf");
  STRATA_SHARED_DATA_OR_SKIP(golden_path, "fixtures/" + c.family + "/golden.json");
  const std::vector<testing::FixtureCase> golden = testing::LoadFixtureGolden(golden_path);
  ASSERT_FALSE(golden.empty());
  std::vector<std::string> args = {"--model", model.string(), "--threads", "1",
                                   "--max-model-len", "256", "--max-kv-blocks", "64"};
  args.insert(args.end(), c.flags.begin(), c.flags.end());
  auto serve = testing::ServeProcess::Start(args);
  ASSERT_TRUE(serve.ok()) << serve.status();
  for (size_t i = 0; i < golden.size(); ++i) {
    json::array prompt;
    for (int32_t id : golden[i].tokens) prompt.push_back(id);
    const json::object request{{"model", "hf"},
                               {"prompt", prompt},
                               {"max_tokens", static_cast<int64_t>(golden[i].greedy.size())},
                               {"temperature", 0},
                               {"ignore_eos", true},
                               {"return_token_ids", true}};
    const testing::HttpResponse r =
        testing::HttpPost((*serve)->port(), "/v1/completions", json::serialize(request));
    ASSERT_EQ(r.status, 200) << r.body << "\n" << (*serve)->Log();
    const json::value body = json::parse(r.body);  // (a temporary would not outlive the loop)
    std::vector<int32_t> ids;
    for (const json::value& id : body.at("choices").at(0).at("token_ids").as_array()) {
      ids.push_back(static_cast<int32_t>(id.to_number<int64_t>()));
    }
    EXPECT_EQ(ids, golden[i].greedy) << "case " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Families, FamiliesServeTest,
    ::testing::Values(ServeCase{"llama", {"--tp", "2"}}, ServeCase{"mistral", {"--tp", "2"}},
                      ServeCase{"mixtral", {"--tp", "2"}},
                      ServeCase{"mixtral", {"--tp", "2", "--expert-parallel"}},
                      ServeCase{"qwen2", {"--tp", "2"}}, ServeCase{"qwen3", {"--tp", "2"}},
                      ServeCase{"phi3", {"--tp", "2"}}, ServeCase{"phi2", {"--tp", "2"}},
                      ServeCase{"gemma2", {"--tp", "2", "--pp", "2"}},
                      ServeCase{"olmo2", {"--tp", "2"}}, ServeCase{"falcon", {"--tp", "2"}},
                      ServeCase{"deepseek2", {"--tp", "2"}},
                      ServeCase{"deepseek2", {"--tp", "2", "--expert-parallel"}}),
    [](const auto& p) {
      std::string name = p.param.family;
      for (const std::string& f : p.param.flags) {
        if (f == "--expert-parallel") name += "_ep";
        if (f == "--pp") name += "_pp";
      }
      return name;
    });

}  // namespace
}  // namespace strata

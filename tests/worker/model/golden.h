// Readers for the golden files in ../shared/data (outputs of llama.cpp, llama2.c and an
// independent fp32 implementation), shared by the model tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "boost/json.hpp"

namespace strata::testing {

inline boost::json::value ParseJsonFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return boost::json::parse(ss.str());
}

inline std::vector<int32_t> ToIds(const boost::json::value& v) {
  std::vector<int32_t> ids;
  for (const auto& e : v.as_array()) ids.push_back(static_cast<int32_t>(e.to_number<int64_t>()));
  return ids;
}

inline std::vector<float> ToFloats(const boost::json::value& v) {
  std::vector<float> out;
  for (const auto& e : v.as_array()) out.push_back(static_cast<float>(e.to_number<double>()));
  return out;
}

// One case of fixtures/<family>/golden.json.
struct FixtureCase {
  std::vector<int32_t> tokens;
  std::vector<std::vector<float>> logits_all;  // [tokens][vocab]
  std::vector<int32_t> greedy;
  std::vector<std::vector<float>> greedy_step_logits;
};

inline std::vector<FixtureCase> LoadFixtureGolden(const std::filesystem::path& path) {
  const boost::json::value root = ParseJsonFile(path);
  std::vector<FixtureCase> cases;
  for (const auto& c : root.at("cases").as_array()) {
    FixtureCase fc;
    fc.tokens = ToIds(c.at("tokens"));
    for (const auto& row : c.at("logits_all").as_array()) fc.logits_all.push_back(ToFloats(row));
    fc.greedy = ToIds(c.at("greedy"));
    for (const auto& row : c.at("greedy_step_logits").as_array()) {
      fc.greedy_step_logits.push_back(ToFloats(row));
    }
    cases.push_back(std::move(fc));
  }
  return cases;
}

}  // namespace strata::testing

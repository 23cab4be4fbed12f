// Shared pieces of the Gloo multi-process tests: joining a group from a child, and checking
// how the children ended.
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"
#include "tests/worker/comm/multiprocess.h"
#include "worker/comm/gloo_communicator.h"
#include "worker/comm/store.h"

namespace strata::testing {

inline constexpr std::chrono::milliseconds kTimeout(10000);      // healthy groups never hit it
inline constexpr std::chrono::milliseconds kShortTimeout(1000);  // for the failure tests
inline constexpr double kSlackSeconds = 2.0;  // how late past the timeout an error may come

// Child side: joins the Gloo group whose FileStore lives in `dir`.
inline absl::StatusOr<std::unique_ptr<GlooCommunicator>> JoinGloo(
    const std::filesystem::path& dir, int rank, int world,
    std::chrono::milliseconds timeout = kTimeout) {
  FileStore store(dir);
  GlooOptions options;
  options.rank = rank;
  options.world_size = world;
  options.timeout = timeout;
  return GlooCommunicator::Create(options, store);
}

// Parent side: every child exited with code 0.
inline void ExpectAllOk(const std::vector<RankExit>& exits) {
  for (const RankExit& e : exits) EXPECT_TRUE(e.ok()) << e.Describe();
}

// A fresh store directory named after the running test.
inline std::filesystem::path TestStoreDir() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "_" + info->name();
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  return TempDir(name);
}

}  // namespace strata::testing

// Child side: joins into `comm` or prints the error and returns 1 (`rank` must be in scope).
#define STRATA_CHILD_JOIN(comm, dir, world)                                             \
  auto comm##_or = ::strata::testing::JoinGloo(dir, rank, world);                        \
  if (!comm##_or.ok()) {                                                                 \
    std::fprintf(stderr, "rank %d: %s\n", rank, comm##_or.status().ToString().c_str()); \
    return 1;                                                                            \
  }                                                                                      \
  std::unique_ptr<::strata::GlooCommunicator> comm = *std::move(comm##_or)

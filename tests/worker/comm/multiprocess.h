// Runs one function per rank in forked child processes, for tests of multi-process code.
//
// The children never return into GoogleTest: each runs `body(rank)` and calls _exit with its
// result, so gtest's state, atexit handlers and buffered output are never duplicated. The
// parent waits with a hard limit and SIGKILLs stragglers, so a hang becomes a test failure.
// Call RunRanks only from a parent with no other threads (nothing that spawns threads may
// run in the test process itself).
#pragma once

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace strata::testing {

// How one child ended.
struct RankExit {
  int rank = -1;
  int exit_code = -1;   // valid when signal == 0
  int signal = 0;       // terminating signal, 0 when the child exited
  bool hung = false;    // killed by RunRanks at the limit
  double seconds = 0;   // from fork to exit

  bool ok() const { return signal == 0 && !hung && exit_code == 0; }
  std::string Describe() const;
};

// Forks `world` children; child r runs body(r) and _exits with its return value. Returns one
// RankExit per rank (index = rank) once all have ended or `limit` has passed.
std::vector<RankExit> RunRanks(int world, const std::function<int(int rank)>& body,
                               std::chrono::milliseconds limit = std::chrono::seconds(20));

// Seconds since `start` (steady clock); for timing checks inside children.
double SecondsSince(std::chrono::steady_clock::time_point start);

}  // namespace strata::testing

// Checks for use inside a child body (where `rank` is in scope): print what failed, return 1.
#define STRATA_CHILD_CHECK(cond)                                                            \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "rank %d: %s:%d: check failed: %s\n", rank, __FILE__, __LINE__, \
                   #cond);                                                                  \
      return 1;                                                                             \
    }                                                                                       \
  } while (0)

#define STRATA_CHILD_CHECK_OK(expr)                                                  \
  do {                                                                               \
    const ::absl::Status child_status_ = (expr);                                     \
    if (!child_status_.ok()) {                                                       \
      std::fprintf(stderr, "rank %d: %s:%d: %s\n", rank, __FILE__, __LINE__,         \
                   child_status_.ToString().c_str());                                \
      return 1;                                                                      \
    }                                                                                \
  } while (0)

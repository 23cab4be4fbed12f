// GlooCommunicator across real processes: each test forks 2, 3 and 4 ranks on 127.0.0.1 that
// rendezvous through a FileStore in a fresh temp dir. Values are small integers stored as
// floats, so every sum is exact and results are compared with ==.
#include "worker/comm/gloo_communicator.h"

#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"
#include "tests/worker/comm/gloo_test_util.h"

namespace strata {
namespace {

using testing::ExpectAllOk;
using testing::RunRanks;

class GlooCommunicatorTest : public ::testing::TestWithParam<int> {
 protected:
  int world() const { return GetParam(); }
  std::filesystem::path Dir() const { return testing::TestStoreDir(); }
};

TEST_P(GlooCommunicatorTest, AllReduceSumIsExact) {
  const int world = this->world();
  ExpectAllOk(RunRanks(world, [&, dir = Dir()](int rank) {
    STRATA_CHILD_JOIN(comm, dir, world);
    for (int64_t n : {int64_t{1}, int64_t{1000}, int64_t{1} << 20}) {
      std::vector<float> data(n);  // [n]: (rank + 1) * (i % 1000)
      for (int64_t i = 0; i < n; ++i) data[i] = static_cast<float>((rank + 1) * (i % 1000));
      STRATA_CHILD_CHECK_OK(comm->AllReduceSum(data.data(), n));
      const int64_t rank_sum = world * (world + 1) / 2;
      for (int64_t i = 0; i < n; ++i) {
        STRATA_CHILD_CHECK(data[i] == static_cast<float>(rank_sum * (i % 1000)));
      }
    }
    return 0;
  }));
}

TEST_P(GlooCommunicatorTest, AllGatherStacksRowsByRank) {
  const int world = this->world();
  ExpectAllOk(RunRanks(world, [&, dir = Dir()](int rank) {
    STRATA_CHILD_JOIN(comm, dir, world);
    for (int64_t n : {int64_t{1}, int64_t{777}}) {
      std::vector<float> in(n);                 // [n]: rank * 10000 + i
      std::vector<float> out(world * n, -1.0f);  // [world, n]
      for (int64_t i = 0; i < n; ++i) in[i] = static_cast<float>(rank * 10000 + i);
      STRATA_CHILD_CHECK_OK(comm->AllGather(in.data(), n, out.data()));
      for (int r = 0; r < world; ++r) {
        for (int64_t i = 0; i < n; ++i) {
          STRATA_CHILD_CHECK(out[r * n + i] == static_cast<float>(r * 10000 + i));
        }
      }
    }
    return 0;
  }));
}

TEST_P(GlooCommunicatorTest, BroadcastFromEachRoot) {
  const int world = this->world();
  ExpectAllOk(RunRanks(world, [&, dir = Dir()](int rank) {
    STRATA_CHILD_JOIN(comm, dir, world);
    constexpr int64_t n = 513;
    for (int root = 0; root < world; ++root) {
      std::vector<float> data(n, static_cast<float>(-1 - rank));  // [n]
      if (rank == root) {
        for (int64_t i = 0; i < n; ++i) data[i] = static_cast<float>(root * 1000 + i);
      }
      STRATA_CHILD_CHECK_OK(comm->Broadcast(data.data(), n, root));
      for (int64_t i = 0; i < n; ++i) STRATA_CHILD_CHECK(data[i] == root * 1000.0f + i);
    }
    STRATA_CHILD_CHECK_OK(comm->Barrier());
    return 0;
  }));
}

// Pipeline stages pass activations down a chain (0 -> 1 -> ... -> W-1), then around a ring
// (W-1 -> 0), several messages in a row so per-peer ordering is exercised.
TEST_P(GlooCommunicatorTest, SendRecvBetweenStageNeighbours) {
  const int world = this->world();
  ExpectAllOk(RunRanks(world, [&, dir = Dir()](int rank) {
    STRATA_CHILD_JOIN(comm, dir, world);
    constexpr int64_t n = 300000;  // larger than a socket buffer
    const int next = (rank + 1) % world, prev = (rank + world - 1) % world;
    for (int step = 0; step < 3; ++step) {
      std::vector<float> hidden(n);  // [n]: what stage `rank` produced at `step`
      if (rank > 0) {
        STRATA_CHILD_CHECK_OK(comm->Recv(hidden.data(), n, prev));
        for (int64_t i = 0; i < n; ++i) {
          STRATA_CHILD_CHECK(hidden[i] == static_cast<float>(step * 100 + prev + i % 7));
        }
      }
      for (int64_t i = 0; i < n; ++i) hidden[i] = static_cast<float>(step * 100 + rank + i % 7);
      STRATA_CHILD_CHECK_OK(comm->Send(hidden.data(), n, next));  // last stage closes the ring
      if (rank == 0) {
        STRATA_CHILD_CHECK_OK(comm->Recv(hidden.data(), n, prev));
        STRATA_CHILD_CHECK(hidden[n - 1] == static_cast<float>(step * 100 + prev + (n - 1) % 7));
      }
    }
    return 0;
  }));
}

// Rank r owns ids [r * 10, r * 10 + 10). The maximum 5.0 appears at local index 3 of every
// rank from rank 1 up, so the global answer is rank 1's id 13 on every rank; then a case with
// a unique maximum on the last rank, and one with ties inside a slice.
TEST_P(GlooCommunicatorTest, DistributedArgmaxTakesLowestIdOnTies) {
  const int world = this->world();
  ExpectAllOk(RunRanks(world, [&, dir = Dir()](int rank) {
    STRATA_CHILD_JOIN(comm, dir, world);
    const int32_t begin = rank * 10, end = begin + 10;
    std::vector<float> logits(10, -2.0f);  // [10] this rank's slice
    if (rank >= 1) logits[3] = 5.0f;
    absl::StatusOr<ArgmaxResult> best = DistributedArgmax(*comm, logits.data(), begin, end);
    STRATA_CHILD_CHECK_OK(best.status());
    STRATA_CHILD_CHECK(best->value == 5.0f && best->id == 13);

    if (rank == world - 1) logits[9] = 7.5f;
    best = DistributedArgmax(*comm, logits.data(), begin, end);
    STRATA_CHILD_CHECK_OK(best.status());
    STRATA_CHILD_CHECK(best->value == 7.5f && best->id == (world - 1) * 10 + 9);

    std::vector<float> flat(10, 1.0f);  // all equal everywhere: id 0 wins
    best = DistributedArgmax(*comm, flat.data(), begin, end);
    STRATA_CHILD_CHECK_OK(best.status());
    STRATA_CHILD_CHECK(best->value == 1.0f && best->id == 0);
    return 0;
  }));
}

INSTANTIATE_TEST_SUITE_P(Worlds, GlooCommunicatorTest, ::testing::Values(2, 3, 4),
                         [](const ::testing::TestParamInfo<int>& param) {
                           return "world" + std::to_string(param.param);
                         });

}  // namespace
}  // namespace strata

// GlooCommunicator when peers fail: a rank that never joins, one that is killed mid-run, one
// that stops participating, and bad arguments. Every failure must be an error within the
// timeout (plus slack), never a hang; the parent's hard limit turns a hang into a failure.
#include <signal.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/worker/comm/gloo_test_util.h"
#include "worker/comm/gloo_communicator.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;
using testing::ExpectAllOk;
using testing::JoinGloo;
using testing::kShortTimeout;
using testing::kSlackSeconds;
using testing::RankExit;
using testing::RunRanks;
using testing::SecondsSince;
using testing::TestStoreDir;

constexpr double kLateSeconds = kShortTimeout.count() / 1000.0 + kSlackSeconds;

// Joins with the short timeout into `comm` (`rank` and `world` in scope).
#define JOIN_SHORT(comm, dir)                                                            \
  auto comm##_or = JoinGloo(dir, rank, world, kShortTimeout);                            \
  if (!comm##_or.ok()) {                                                                 \
    std::fprintf(stderr, "rank %d: %s\n", rank, comm##_or.status().ToString().c_str()); \
    return 1;                                                                            \
  }                                                                                      \
  std::unique_ptr<GlooCommunicator> comm = *std::move(comm##_or)

// Checks a failed operation: not OK, early enough, and the communicator stays broken.
int ExpectBroken(int rank, Communicator& comm, const absl::Status& status, double seconds) {
  std::fprintf(stderr, "rank %d: expected failure after %.2f s: %s\n", rank, seconds,
               status.ToString().c_str());
  STRATA_CHILD_CHECK(!status.ok());
  STRATA_CHILD_CHECK(seconds < kLateSeconds);
  STRATA_CHILD_CHECK(absl::StrContains(status.message(), "rank " + std::to_string(rank)));
  float x = 1.0f;
  const absl::Status again = comm.AllReduceSum(&x, 1);
  STRATA_CHILD_CHECK(absl::IsFailedPrecondition(again));
  STRATA_CHILD_CHECK(absl::StrContains(again.message(), "broken"));
  return 0;
}

TEST(GlooFailureTest, PeerThatNeverShowsUpFailsRendezvous) {
  const int world = 3;
  ExpectAllOk(RunRanks(world, [&, dir = TestStoreDir()](int rank) {
    if (rank == 2) return 0;  // never joins
    const Clock::time_point start = Clock::now();
    auto comm = JoinGloo(dir, rank, world, kShortTimeout);
    const double seconds = SecondsSince(start);
    std::fprintf(stderr, "rank %d: expected failure after %.2f s: %s\n", rank, seconds,
                 comm.status().ToString().c_str());
    STRATA_CHILD_CHECK(!comm.ok());
    STRATA_CHILD_CHECK(seconds < kLateSeconds);
    STRATA_CHILD_CHECK(absl::StrContains(comm.status().message(), "rendezvous"));
    return 0;
  }));
}

TEST(GlooFailureTest, PeerKilledMidRunGivesErrorsNotHangs) {
  const int world = 3;
  const std::vector<RankExit> exits = RunRanks(world, [&, dir = TestStoreDir()](int rank) {
    JOIN_SHORT(comm, dir);
    std::vector<float> data(1000, 1.0f);  // [1000]
    STRATA_CHILD_CHECK_OK(comm->AllReduceSum(data.data(), 1000));
    if (rank == 2) raise(SIGKILL);  // crashes between steps
    const Clock::time_point start = Clock::now();
    const absl::Status status = comm->AllReduceSum(data.data(), 1000);
    return ExpectBroken(rank, *comm, status, SecondsSince(start));
  });
  EXPECT_TRUE(exits[0].ok()) << exits[0].Describe();
  EXPECT_TRUE(exits[1].ok()) << exits[1].Describe();
  EXPECT_EQ(exits[2].signal, SIGKILL) << exits[2].Describe();
}

TEST(GlooFailureTest, ReceiverOfDeadStageGetsError) {
  const int world = 2;
  const std::vector<RankExit> exits = RunRanks(world, [&, dir = TestStoreDir()](int rank) {
    JOIN_SHORT(comm, dir);
    STRATA_CHILD_CHECK_OK(comm->Barrier());
    if (rank == 0) raise(SIGKILL);  // the previous stage dies before sending
    std::vector<float> hidden(64);  // [64]
    const Clock::time_point start = Clock::now();
    const absl::Status status = comm->Recv(hidden.data(), 64, 0);
    STRATA_CHILD_CHECK(absl::StrContains(status.message(), "peer 0"));
    return ExpectBroken(rank, *comm, status, SecondsSince(start));
  });
  EXPECT_EQ(exits[0].signal, SIGKILL) << exits[0].Describe();
  EXPECT_TRUE(exits[1].ok()) << exits[1].Describe();
}

TEST(GlooFailureTest, StuckPeerTimesOut) {
  const int world = 3;
  ExpectAllOk(RunRanks(world, [&, dir = TestStoreDir()](int rank) {
    JOIN_SHORT(comm, dir);
    if (rank == 2) {  // alive, connected, but never joins the collective
      std::this_thread::sleep_for(kShortTimeout * 2);
      return 0;
    }
    std::vector<float> data(1000, 1.0f);  // [1000]
    const Clock::time_point start = Clock::now();
    const absl::Status status = comm->AllReduceSum(data.data(), 1000);
    STRATA_CHILD_CHECK(absl::IsDeadlineExceeded(status));
    return ExpectBroken(rank, *comm, status, SecondsSince(start));
  }));
}

TEST(GlooFailureTest, SingleRankAndBadArguments) {
  ExpectAllOk(RunRanks(1, [dir = TestStoreDir()](int rank) {
    auto comm_or = JoinGloo(dir, rank, 1);
    STRATA_CHILD_CHECK_OK(comm_or.status());
    GlooCommunicator& comm = **comm_or;
    float data[3] = {1, 2, 3};  // [3]
    float out[3] = {};          // [world = 1, 3]
    STRATA_CHILD_CHECK_OK(comm.AllReduceSum(data, 3));
    STRATA_CHILD_CHECK(data[0] == 1 && data[2] == 3);
    STRATA_CHILD_CHECK_OK(comm.AllGather(data, 3, out));
    STRATA_CHILD_CHECK(out[1] == 2);
    STRATA_CHILD_CHECK_OK(comm.Broadcast(data, 3, 0));
    STRATA_CHILD_CHECK_OK(comm.Barrier());
    STRATA_CHILD_CHECK(absl::IsInvalidArgument(comm.AllReduceSum(data, -1)));
    STRATA_CHILD_CHECK(absl::IsInvalidArgument(comm.AllReduceSum(nullptr, 3)));
    STRATA_CHILD_CHECK(absl::IsInvalidArgument(comm.Broadcast(data, 3, 1)));
    STRATA_CHILD_CHECK(absl::IsInvalidArgument(comm.Send(data, 3, 0)));  // to itself
    STRATA_CHILD_CHECK(absl::IsInvalidArgument(comm.Recv(data, 3, 5)));
    STRATA_CHILD_CHECK_OK(comm.AllReduceSum(data, 3));  // argument errors do not break it
    return 0;
  }));
}

TEST(GlooFailureTest, InvalidOptionsAreRejected) {
  FileStore store(TestStoreDir());  // no Gloo threads start: Create fails before the device
  GlooOptions options;
  options.rank = 3;
  options.world_size = 2;
  EXPECT_TRUE(absl::IsInvalidArgument(GlooCommunicator::Create(options, store).status()));
  options.rank = 0;
  options.world_size = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(GlooCommunicator::Create(options, store).status()));
}

}  // namespace
}  // namespace strata

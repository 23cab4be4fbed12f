// LocalArgmax and the merge in DistributedArgmax, through an in-process fake communicator whose
// AllGather returns the other ranks' candidates. (The real multi-process path is in
// gloo_communicator_test.cc.)
#include "worker/comm/communicator.h"

#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace strata {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// A rank of a fake group: AllGather places this rank's row among rows given up front.
class FakeGather : public Communicator {
 public:
  FakeGather(int rank, std::vector<ArgmaxResult> others) : rank_(rank), rows_(std::move(others)) {}
  int rank() const override { return rank_; }
  int world_size() const override { return static_cast<int>(rows_.size()); }
  bool device_memory() const override { return false; }
  absl::Status AllGather(const float* in, int64_t n, float* out) override {
    for (int r = 0; r < world_size(); ++r) {
      out[2 * r] = rows_[r].value;
      out[2 * r + 1] = std::bit_cast<float>(rows_[r].id);
    }
    out[2 * rank_] = in[0];
    out[2 * rank_ + 1] = in[1];
    return absl::OkStatus();
  }
  absl::Status AllReduceSum(float*, int64_t) override { return absl::UnimplementedError(""); }
  absl::Status Broadcast(float*, int64_t, int) override { return absl::UnimplementedError(""); }
  absl::Status Send(const float*, int64_t, int) override { return absl::UnimplementedError(""); }
  absl::Status Recv(float*, int64_t, int) override { return absl::UnimplementedError(""); }
  absl::Status Barrier() override { return absl::UnimplementedError(""); }

 private:
  int rank_;
  std::vector<ArgmaxResult> rows_;  // [world]; this rank's row is overwritten by its input
};

TEST(LocalArgmaxTest, LowestIdOnTiesAndNaNNeverWins) {
  const std::vector<float> logits = {1, 3, kNaN, 3, -1};  // ids 100..104
  ArgmaxResult best = LocalArgmax(logits.data(), 100, 105);
  EXPECT_EQ(best.id, 101);
  EXPECT_EQ(best.value, 3.0f);
  const std::vector<float> nan_first = {kNaN, -5};
  EXPECT_EQ(LocalArgmax(nan_first.data(), 0, 2).id, 1);
  EXPECT_EQ(LocalArgmax(nullptr, 7, 7).id, -1);  // empty slice
}

TEST(DistributedArgmaxTest, MergesAcrossRanks) {
  struct Case {
    const char* name;
    std::vector<ArgmaxResult> others;  // [world]: candidates of the other ranks
    int rank;
    std::vector<float> logits;  // this rank's slice, starting at id vocab_begin
    int32_t vocab_begin;
    ArgmaxResult want;
  };
  const std::vector<Case> cases = {
      {"tie across ranks goes to lower id", {{2, 5}, {}, {2, 30}}, 1, {2, 2}, 10, {2, 5}},
      {"this rank wins", {{2, 5}, {}, {2, 30}}, 1, {0, 4}, 10, {4, 11}},
      {"empty slice loses", {{-9, 3}, {}}, 1, {}, 8, {-9, 3}},
      {"NaN candidate loses", {{kNaN, 0}, {}}, 1, {-1}, 8, {-1, 8}},
      {"negative infinity still has an id", {{}, {}}, 0, {-INFINITY}, 0, {-INFINITY, 0}},
  };
  for (const Case& c : cases) {
    std::vector<ArgmaxResult> rows = c.others;
    for (ArgmaxResult& r : rows) {
      if (r.id == -1 && r.value == 0.0f) r = {-INFINITY, -1};  // default: empty slice
    }
    FakeGather comm(c.rank, rows);
    const int32_t end = c.vocab_begin + static_cast<int32_t>(c.logits.size());
    absl::StatusOr<ArgmaxResult> got =
        DistributedArgmax(comm, c.logits.data(), c.vocab_begin, end);
    ASSERT_TRUE(got.ok()) << c.name << ": " << got.status();
    EXPECT_EQ(got->id, c.want.id) << c.name;
    EXPECT_EQ(got->value, c.want.value) << c.name;
  }
}

TEST(DistributedArgmaxTest, RejectsBadSlice) {
  FakeGather comm(0, {{}});
  EXPECT_TRUE(absl::IsInvalidArgument(DistributedArgmax(comm, nullptr, 5, 4).status()));
}

}  // namespace
}  // namespace strata

#include "worker/backend/step_batch.h"

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(StepBatchTest, FlattensSequencesWithSlotsAndPaddedTables) {
  StepBatch b;
  // A 3-token prefill into blocks {5} and a decode at position 17 with blocks {2, 7}.
  b.AddSequence({10, 11, 12}, 0, {5}, 16, /*all_logits=*/false);
  b.AddSequence({13}, 17, {2, 7}, 16, /*all_logits=*/false);
  EXPECT_EQ(b.tokens, (std::vector<int32_t>{10, 11, 12, 13}));
  EXPECT_EQ(b.positions, (std::vector<int32_t>{0, 1, 2, 17}));
  EXPECT_EQ(b.slot_mapping, (std::vector<int32_t>{80, 81, 82, 7 * 16 + 1}));
  EXPECT_EQ(b.query_start, (std::vector<int32_t>{0, 3, 4}));
  EXPECT_EQ(b.context_lens, (std::vector<int32_t>{3, 18}));
  EXPECT_EQ(b.max_blocks_per_seq, 2);
  EXPECT_EQ(b.block_tables, (std::vector<int32_t>{5, -1, 2, 7}));
  EXPECT_EQ(b.logit_rows, (std::vector<int32_t>{2, 3}));
  EXPECT_TRUE(b.Validate(100, 64, 8, 16).ok());
}

TEST(StepBatchTest, ValidateNamesWhatIsWrong) {
  StepBatch b;
  b.AddSequence({1, 2}, 0, {3}, 16, true);
  EXPECT_EQ(b.logit_rows, (std::vector<int32_t>{0, 1}));
  EXPECT_NE(b.Validate(2, 64, 8, 16).message().find("token id 2"), std::string::npos);
  EXPECT_NE(b.Validate(100, 1, 8, 16).message().find("position 1"), std::string::npos);
  EXPECT_NE(b.Validate(100, 64, 3, 16).message().find("outside the cache"), std::string::npos);
  StepBatch short_table;
  short_table.AddSequence(std::vector<int32_t>(17, 1), 0, {0}, 16, false);
  EXPECT_FALSE(short_table.Validate(100, 64, 8, 16).ok());
}

// Found by worker_step_fuzz: block ids and positions near 2^31 must be refused, not overflow.
TEST(StepBatchTest, HugeBlockIdsAndPositionsAreRefusedWithoutOverflow) {
  StepBatch huge_block;
  huge_block.AddSequence({1, 2}, 0, {218103807}, 16, false);
  EXPECT_EQ(huge_block.slot_mapping, (std::vector<int32_t>{-1, -1}));
  EXPECT_NE(huge_block.Validate(100, 64, 8, 16).message().find("KV slot -1"), std::string::npos);
  StepBatch late;
  late.AddSequence({1, 2}, INT32_MAX, {0}, 16, false);
  EXPECT_EQ(late.positions[1], -1);
  EXPECT_EQ(late.context_lens[0], -1);
  EXPECT_FALSE(late.Validate(100, 64, 8, 16).ok());
}

}  // namespace
}  // namespace strata

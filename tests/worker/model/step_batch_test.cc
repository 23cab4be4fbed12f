#include "worker/backend/step_batch.h"

#include <vector>

#include "gtest/gtest.h"
#include "worker/backend/backend.h"

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

// Steps a recorded graph can replay: every sequence decodes one token, each with its logits.
TEST(StepBatchTest, DecodeStepsAreOneSampledTokenPerSequence) {
  StepBatch decode;
  decode.AddSequence({13}, 17, {2, 7}, 16, false);
  decode.AddSequence({14}, 0, {3}, 16, false);
  EXPECT_TRUE(IsDecodeStep(decode));
  StepBatch prefill = decode;
  prefill.AddSequence({1, 2}, 0, {4}, 16, false);
  EXPECT_FALSE(IsDecodeStep(prefill));
  StepBatch chunk;  // a prompt chunk that samples nothing
  chunk.AddSequence({13}, 17, {2, 7}, 16, false);
  chunk.logit_rows.clear();
  EXPECT_FALSE(IsDecodeStep(chunk));
  EXPECT_FALSE(IsDecodeStep(StepBatch{}));
}

// A decode step of 3 sequences padded to 4 in the layout of at most 8 sequences with 4 block
// table columns: the batch's values, then the padding's (token 0 at position 0, no K/V
// stored, one key read from block 0); each table row's used columns only.
TEST(StepBatchTest, PaddedDecodeStepsShareTheLargestLayout) {
  StepBatch b;
  b.AddSequence({13}, 17, {2, 7}, 16, false);
  b.AddSequence({14}, 0, {3}, 16, false);
  b.AddSequence({15}, 31, {5, 6}, 16, false);
  const PaddedDecodeLayout layout(8, 4);
  EXPECT_EQ(layout.positions, 8);
  EXPECT_EQ(layout.query_start, 32);
  EXPECT_EQ(layout.context_lens, 41);
  EXPECT_EQ(layout.block_tables, 57);
  EXPECT_EQ(layout.size, 57 + 8 * 4);
  std::vector<int32_t> out(layout.size, 99);
  PackPaddedDecode(b, 4, layout, out.data());
  auto at = [&](int64_t offset, int64_t n) {
    return std::vector<int32_t>(out.begin() + offset, out.begin() + offset + n);
  };
  EXPECT_EQ(at(layout.tokens, 5), (std::vector<int32_t>{13, 14, 15, 0, 99}));
  EXPECT_EQ(at(layout.positions, 5), (std::vector<int32_t>{17, 0, 31, 0, 99}));
  EXPECT_EQ(at(layout.slots, 4), (std::vector<int32_t>{7 * 16 + 1, 3 * 16, 6 * 16 + 15, -1}));
  EXPECT_EQ(at(layout.token_seq, 4), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(at(layout.query_start, 6), (std::vector<int32_t>{0, 1, 2, 3, 4, 99}));
  EXPECT_EQ(at(layout.context_lens, 4), (std::vector<int32_t>{18, 1, 32, 1}));
  EXPECT_EQ(at(layout.logit_rows, 4), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(at(layout.block_tables, 5 * 4),
            (std::vector<int32_t>{2, 7, 99, 99, 3, -1, 99, 99, 5, 6, 99, 99, 0, 99, 99, 99, 99, 99,
                                  99, 99}));
}

}  // namespace
}  // namespace strata

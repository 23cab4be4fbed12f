// BlockManager: allocation, reference counts, prefix commits and matches, LRU eviction.
#include "coordinator/engine/block_manager.h"

#include <vector>

#include "gtest/gtest.h"

namespace strata::engine {
namespace {

std::vector<BlockHash> Chain(const BlockManager& m, const std::vector<int32_t>& tokens) {
  std::vector<BlockHash> hashes;
  for (size_t b = 0; (b + 1) * m.block_size() <= tokens.size(); ++b) {
    hashes.push_back(m.Hash(hashes.empty() ? BlockHash{} : hashes.back(),
                            absl::MakeConstSpan(tokens).subspan(b * m.block_size(),
                                                                m.block_size())));
  }
  return hashes;
}

TEST(BlockManagerTest, AllocatesEveryBlockOnceAndGetsThemBack) {
  BlockManager m(4, 16, /*prefix_caching=*/true);
  std::vector<int32_t> got;
  while (auto b = m.Allocate()) got.push_back(*b);
  EXPECT_EQ(got.size(), 4u);
  EXPECT_EQ(m.num_available(), 0);
  EXPECT_FALSE(m.Allocate().has_value());
  for (int32_t b : got) m.Release(b);
  EXPECT_EQ(m.num_available(), 4);
}

TEST(BlockManagerTest, HashNamesTheWholePrefix) {
  BlockManager m(4, 4, true);
  const auto a = Chain(m, {1, 2, 3, 4, 5, 6, 7, 8});
  const auto b = Chain(m, {9, 2, 3, 4, 5, 6, 7, 8});  // same second block, other first block
  ASSERT_EQ(a.size(), 2u);
  EXPECT_FALSE(a[1] == b[1]);
  EXPECT_TRUE(a[0] == Chain(m, {1, 2, 3, 4})[0]);
}

TEST(BlockManagerTest, CommittedBlocksAreSharedAndEvictedLeastRecentlyUsedFirst) {
  BlockManager m(3, 4, true);
  const auto first = Chain(m, {1, 2, 3, 4, 5, 6, 7, 8});
  const int32_t b0 = *m.Allocate(), b1 = *m.Allocate();
  m.Commit(b0, first[0]);
  m.Commit(b1, first[1]);
  // Held blocks match and gain a reference.
  std::vector<int32_t> hit = m.Match(first);
  EXPECT_EQ(hit, (std::vector<int32_t>{b0, b1}));
  for (int32_t b : hit) m.Release(b);
  m.Release(b0);
  m.Release(b1);
  EXPECT_EQ(m.num_available(), 3);  // one free, two cached and evictable
  EXPECT_EQ(m.num_cached(), 2);
  // A prefix that diverges in the first block matches nothing.
  EXPECT_TRUE(m.Match(Chain(m, {9, 9, 9, 9})).empty());
  // Touch b1's prefix (matching b0 then b1), so b0 was used before b1... both used now; the
  // free block goes first, then the least recently released.
  hit = m.Match(first);
  for (int32_t b : hit) m.Release(b);  // b0 released before b1: b0 is older
  const int32_t fresh = *m.Allocate();
  EXPECT_NE(fresh, b0);
  EXPECT_NE(fresh, b1);
  EXPECT_EQ(*m.Allocate(), b0);  // evicts b0
  EXPECT_EQ(m.num_cached(), 1);
  EXPECT_TRUE(m.Match(first).empty());  // the chain is broken at its first block
  EXPECT_EQ(m.hit_blocks(), 4);
}

TEST(BlockManagerTest, ForgetCacheDropsEveryPrefix) {
  BlockManager m(2, 4, true);
  const auto h = Chain(m, {1, 2, 3, 4});
  const int32_t b = *m.Allocate();
  m.Commit(b, h[0]);
  m.Release(b);
  m.ForgetCache();
  EXPECT_EQ(m.num_cached(), 0);
  EXPECT_EQ(m.num_available(), 2);
  EXPECT_TRUE(m.Match(h).empty());
}

TEST(BlockManagerTest, CachingOffNeverMatches) {
  BlockManager m(2, 4, false);
  const auto h = Chain(m, {1, 2, 3, 4});
  const int32_t b = *m.Allocate();
  m.Commit(b, h[0]);
  EXPECT_TRUE(m.Match(h).empty());
  m.Release(b);
  EXPECT_EQ(m.num_cached(), 0);
  EXPECT_EQ(m.num_available(), 2);
}

}  // namespace
}  // namespace strata::engine

#include "coordinator/engine/block_manager.h"

#include <random>

#include "common/status.h"

namespace strata::engine {
namespace {

// SplitMix64's finaliser: a bijective 64-bit mix.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

BlockManager::BlockManager(int64_t num_blocks, int32_t block_size, bool prefix_caching)
    : block_size_(block_size), prefix_caching_(prefix_caching), info_(num_blocks) {
  STRATA_CHECK(num_blocks > 0 && block_size > 0);
  std::random_device random;
  key_hi_ = (uint64_t{random()} << 32) ^ random();
  key_lo_ = (uint64_t{random()} << 32) ^ random();
  free_.reserve(num_blocks);
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

BlockHash BlockManager::Hash(const BlockHash& parent, absl::Span<const int32_t> tokens) const {
  // Two independently keyed chains over (parent, tokens).
  uint64_t hi = Mix(parent.hi ^ key_hi_), lo = Mix(parent.lo ^ key_lo_ ^ 0x9e3779b97f4a7c15ULL);
  for (int32_t t : tokens) {
    const uint64_t v = static_cast<uint32_t>(t);
    hi = Mix(hi ^ (v + 0x632be59bd9b4e019ULL));
    lo = Mix(lo + (v ^ 0x8cb92ba72f3d8dd7ULL) * 0xff51afd7ed558ccdULL);
  }
  return BlockHash{Mix(hi ^ tokens.size()), Mix(lo ^ (tokens.size() << 1))};
}

std::optional<int32_t> BlockManager::Allocate() {
  int32_t block;
  if (!free_.empty()) {
    block = free_.back();
    free_.pop_back();
  } else if (!evictable_.empty()) {
    block = evictable_.front();
    evictable_.pop_front();
    Info& info = info_[block];
    cached_.erase(info.hash);
    info.cached = false;
  } else {
    return std::nullopt;
  }
  info_[block].refs = 1;
  return block;
}

std::vector<int32_t> BlockManager::Match(absl::Span<const BlockHash> hashes) {
  std::vector<int32_t> blocks;
  if (!prefix_caching_) return blocks;
  query_blocks_ += static_cast<int64_t>(hashes.size());
  for (const BlockHash& hash : hashes) {
    auto it = cached_.find(hash);
    if (it == cached_.end()) break;
    Info& info = info_[it->second];
    if (info.refs++ == 0) evictable_.erase(info.lru);
    blocks.push_back(it->second);
  }
  hit_blocks_ += static_cast<int64_t>(blocks.size());
  return blocks;
}

void BlockManager::Commit(int32_t block, const BlockHash& hash) {
  Info& info = info_[block];
  if (!prefix_caching_ || info.cached || cached_.contains(hash)) return;
  info.cached = true;
  info.hash = hash;
  cached_.emplace(hash, block);
}

void BlockManager::Release(int32_t block) {
  Info& info = info_[block];
  STRATA_CHECK(info.refs > 0);
  if (--info.refs > 0) return;
  if (info.cached) {
    evictable_.push_back(block);
    info.lru = std::prev(evictable_.end());
  } else {
    free_.push_back(block);
  }
}

void BlockManager::ForgetCache() {
  for (auto& [hash, block] : cached_) info_[block].cached = false;
  cached_.clear();
  for (int32_t block : evictable_) free_.push_back(block);
  evictable_.clear();
}

}  // namespace strata::engine

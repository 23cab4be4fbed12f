// BlockManager: the cluster's KV cache blocks, as the coordinator sees them. Every rank holds
// the same number of blocks (its own layers' and heads' share of each), so one id names a block
// everywhere; the block tables the scheduler builds travel with the steps.
//
// Prefix caching: a full block whose KV has been computed can be committed under the hash of
// its tokens chained with the hash of every block before it, so the hash names the whole prefix
// up to the block's end. A later sequence whose prompt starts with the same tokens finds those
// blocks with Match() and skips computing them. Blocks are reference-counted; a committed block
// nobody holds stays cached and is evicted least-recently-used first when a fresh block is
// needed. A block is only ever shared while full, and full blocks are never written again, so
// sharing needs no copy-on-write.
//
// The hash is keyed with a random per-process key, so users cannot craft token sequences that
// collide with another user's prefix (128 bits; a collision would hand out wrong KV).
//
// Not thread-safe: the engine's thread owns it.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"

namespace strata::engine {

struct BlockHash {
  uint64_t hi = 0, lo = 0;
  bool operator==(const BlockHash& o) const { return hi == o.hi && lo == o.lo; }
  template <typename H>
  friend H AbslHashValue(H h, const BlockHash& b) {
    return H::combine(std::move(h), b.hi, b.lo);
  }
};

class BlockManager {
 public:
  BlockManager(int64_t num_blocks, int32_t block_size, bool prefix_caching);

  int64_t num_blocks() const { return static_cast<int64_t>(info_.size()); }
  int32_t block_size() const { return block_size_; }
  bool prefix_caching() const { return prefix_caching_; }
  // Blocks Allocate() can still hand out: free ones and cached ones nobody holds.
  int64_t num_available() const {
    return static_cast<int64_t>(free_.size() + evictable_.size());
  }
  int64_t num_cached() const { return static_cast<int64_t>(cached_.size()); }

  // The hash of the full block `tokens` ([block_size]) that follows the prefix `parent`
  // (BlockHash{} for the first block).
  BlockHash Hash(const BlockHash& parent, absl::Span<const int32_t> tokens) const;

  // A block with one reference: a free one, else the least recently used cached block nobody
  // holds (which leaves the cache). nullopt when every block is held.
  std::optional<int32_t> Allocate();

  // The longest run of cached blocks holding hashes[0], hashes[1], ... in order; each returned
  // block gains a reference. Counts queries and hits (in blocks).
  std::vector<int32_t> Match(absl::Span<const BlockHash> hashes);

  // `block` (held by the caller, full, computed) holds the prefix `hash`: later Match calls may
  // return it. No-op when caching is off, or another block already holds this prefix.
  void Commit(int32_t block, const BlockHash& hash);

  // Drops one reference; at zero a committed block stays cached (evictable), another is free.
  void Release(int32_t block);

  // Forgets every cached prefix (the workers lost their KV cache, e.g. after a reload): cached
  // blocks nobody holds become free, held ones stop being matchable.
  void ForgetCache();

  int64_t hit_blocks() const { return hit_blocks_; }
  int64_t query_blocks() const { return query_blocks_; }

 private:
  struct Info {
    int32_t refs = 0;
    bool cached = false;
    BlockHash hash;
    std::list<int32_t>::iterator lru;  // valid while cached with refs == 0
  };

  const int32_t block_size_;
  const bool prefix_caching_;
  uint64_t key_hi_ = 0, key_lo_ = 0;
  std::vector<Info> info_;
  std::vector<int32_t> free_;          // never-cached blocks nobody holds
  std::list<int32_t> evictable_;       // cached blocks nobody holds, least recently used first
  absl::flat_hash_map<BlockHash, int32_t> cached_;
  int64_t hit_blocks_ = 0, query_blocks_ = 0;
};

}  // namespace strata::engine

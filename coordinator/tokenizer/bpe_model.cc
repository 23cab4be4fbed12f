// BPE merge loop. Short words keep the rank of every adjacent pair in an array and rescan it
// for the minimum (cheap: integer compares, two hash look-ups per merge); long words (whole
// SentencePiece-style texts) use a priority queue of (rank, position) with stale entries
// skipped, as tokenizers' word.rs. Both pick the lowest rank, leftmost first, so they agree.
#include "coordinator/tokenizer/bpe_model.h"

#include <limits>
#include <queue>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/strings.h"
#include "coordinator/tokenizer/byte_level.h"
#include "coordinator/tokenizer/utf8.h"

namespace strata::tokenizer {
namespace {


constexpr int32_t kNoRank = std::numeric_limits<int32_t>::max();
constexpr size_t kHeapThreshold = 96;        // symbols; longer words use the priority queue
constexpr size_t kMaxCachedWord = 256;       // bytes, as tokenizers' cache
constexpr size_t kMaxCachedPerShard = 8192;  // a full shard is cleared

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Create(BpeModelSpec spec,
                                                           std::string_view source) {
  auto model = std::unique_ptr<BpeModel>(new BpeModel());
  model->byte_ids_.fill(-1);
  model->fallback_ids_.fill(-1);
  for (const auto& [token, id] : spec.vocab) {
    model->by_spelling_.try_emplace(token, id);
    if (spec.byte_level) {
      if (std::optional<std::string> bytes = ByteLevelToBytes(token)) {
        model->by_key_.try_emplace(*bytes, id);
      }
    } else {
      model->by_key_.try_emplace(token, id);
    }
  }
  for (int b = 0; b < 256; ++b) {
    if (spec.byte_level) {
      const auto it = model->by_key_.find(std::string(1, static_cast<char>(b)));
      if (it != model->by_key_.end()) model->byte_ids_[b] = it->second;
    }
    const auto it = model->by_spelling_.find(absl::StrFormat("<0x%02X>", b));
    if (it != model->by_spelling_.end()) model->fallback_ids_[b] = it->second;
  }
  if (spec.unk_token) model->unk_id_ = model->TokenToId(*spec.unk_token);
  const std::string& prefix = spec.continuing_subword_prefix;
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto& [left, right] = spec.merges[rank];
    std::string_view right_bare = right;
    if (!prefix.empty() && right_bare.starts_with(prefix)) right_bare.remove_prefix(prefix.size());
    const int32_t left_id = model->TokenToId(left);
    const int32_t right_id = model->TokenToId(right);
    const int32_t merged_id = model->TokenToId(absl::StrCat(left, Sv(right_bare)));
    if (left_id < 0 || right_id < 0 || merged_id < 0) {
      return absl::InvalidArgumentError(absl::StrCat(Sv(source), ": merge ", rank, " '", left, " ",
                                                     right,
                                                     "' names a token that is not in "
                                                     "the vocabulary"));
    }
    model->merges_.try_emplace(PairKey(left_id, right_id),
                               Merge{static_cast<int32_t>(rank), merged_id});
  }
  spec.merges.clear();
  spec.merges.shrink_to_fit();
  spec.vocab.clear();
  spec.vocab.shrink_to_fit();
  model->spec_ = std::move(spec);
  return model;
}

int32_t BpeModel::TokenToId(std::string_view token) const {
  const auto it = by_spelling_.find(token);
  return it == by_spelling_.end() ? -1 : it->second;
}

const BpeModel::Merge* BpeModel::FindMerge(int32_t left, int32_t right) const {
  const auto it = merges_.find(PairKey(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::InitialSymbols(std::string_view word, std::vector<int32_t>* symbols) const {
  if (spec_.byte_level && spec_.continuing_subword_prefix.empty() &&
      spec_.end_of_word_suffix.empty()) {
    for (unsigned char b : word) {
      if (byte_ids_[b] >= 0)
        symbols->push_back(byte_ids_[b]);
      else if (unk_id_ >= 0)
        symbols->push_back(unk_id_);
    }
    return;
  }
  bool last_unknown = false;
  std::string key;
  for (size_t pos = 0; pos < word.size();) {
    const size_t len =
        spec_.byte_level ? 1 : std::max<size_t>(ValidCharLength(word.substr(pos)), 1);
    const std::string_view unit = word.substr(pos, len);
    key.clear();
    if (pos > 0) key.append(spec_.continuing_subword_prefix);
    key.append(unit);
    pos += len;
    if (pos == word.size()) key.append(spec_.end_of_word_suffix);
    if (const auto it = by_key_.find(key); it != by_key_.end()) {
      symbols->push_back(it->second);
      last_unknown = false;
      continue;
    }
    if (spec_.byte_fallback) {
      bool all = true;
      for (unsigned char b : unit) all = all && fallback_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : unit) symbols->push_back(fallback_ids_[b]);
        last_unknown = false;
        continue;
      }
    }
    if (unk_id_ < 0) continue;  // no unk token: the character is dropped, as tokenizers does
    if (!(spec_.fuse_unk && last_unknown)) symbols->push_back(unk_id_);
    last_unknown = true;
  }
}

void BpeModel::MergeAll(std::vector<int32_t>* symbols) const {
  std::vector<int32_t>& s = *symbols;
  if (s.size() < 2) return;
  if (s.size() > kHeapThreshold) return MergeAllWithHeap(symbols);
  // ranks[i]: merge of (s[i], s[i+1]).
  std::array<const Merge*, kHeapThreshold> ranks;
  size_t n = s.size();
  for (size_t i = 0; i + 1 < n; ++i) ranks[i] = FindMerge(s[i], s[i + 1]);
  while (n > 1) {
    size_t best = n;
    int32_t best_rank = kNoRank;
    for (size_t i = 0; i + 1 < n; ++i) {
      if (ranks[i] != nullptr && ranks[i]->rank < best_rank) {
        best_rank = ranks[i]->rank;
        best = i;
      }
    }
    if (best == n) break;
    s[best] = ranks[best]->id;
    for (size_t i = best + 1; i + 1 < n; ++i) {
      s[i] = s[i + 1];
      ranks[i] = ranks[i + 1];
    }
    --n;
    if (best > 0) ranks[best - 1] = FindMerge(s[best - 1], s[best]);
    if (best + 1 < n) ranks[best] = FindMerge(s[best], s[best + 1]);
  }
  s.resize(n);
}

void BpeModel::MergeAllWithHeap(std::vector<int32_t>* symbols) const {
  struct Node {
    int32_t id;
    int32_t prev;
    int32_t next;
  };
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t left_id;
    int32_t right_id;
    bool operator<(const Candidate& o) const {  // max-heap: lowest rank, then leftmost, on top
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  const int32_t n = static_cast<int32_t>(symbols->size());
  std::vector<Node> nodes(n);
  for (int32_t i = 0; i < n; ++i) nodes[i] = {(*symbols)[i], i - 1, i + 1 < n ? i + 1 : -1};
  std::priority_queue<Candidate> queue;
  const auto push = [&](int32_t pos) {
    if (pos < 0 || nodes[pos].next < 0) return;
    const int32_t right = nodes[pos].next;
    if (const Merge* m = FindMerge(nodes[pos].id, nodes[right].id)) {
      queue.push({m->rank, pos, nodes[pos].id, nodes[right].id});
    }
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Node& left = nodes[top.pos];
    if (left.id != top.left_id || left.next < 0 || nodes[left.next].id != top.right_id) continue;
    Node& right = nodes[left.next];
    if (right.id < 0) continue;
    left.id = FindMerge(top.left_id, top.right_id)->id;
    right.id = -1;  // removed
    left.next = right.next;
    if (right.next >= 0) nodes[right.next].prev = top.pos;
    push(left.prev);
    push(top.pos);
  }
  symbols->clear();
  for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = nodes[i].next) symbols->push_back(nodes[i].id);
}

void BpeModel::Encode(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (spec_.ignore_merges) {
    if (const auto it = by_key_.find(word); it != by_key_.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWord;
  CacheShard& shard = cache_[StringViewHash()(word) % kCacheShards];
  if (cacheable) {
    std::lock_guard<std::mutex> lock(shard.mu);
    if (const auto it = shard.words.find(word); it != shard.words.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  InitialSymbols(word, &symbols);
  MergeAll(&symbols);
  ids->insert(ids->end(), symbols.begin(), symbols.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(shard.mu);
    if (shard.words.size() >= kMaxCachedPerShard) shard.words.clear();
    shard.words.try_emplace(word, std::move(symbols));
  }
}

}  // namespace strata::tokenizer

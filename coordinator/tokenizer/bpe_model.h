// The BPE model of a Hugging Face tokenizer (model.type "BPE"), also used for GGUF "gpt2"
// vocabularies: a vocabulary, ranked merges, and the options of tokenizers' bpe/model.rs
// (byte_fallback, fuse_unk, unk_token, ignore_merges, continuing_subword_prefix,
// end_of_word_suffix).
//
// Words are split into initial symbols, then the adjacent pair with the lowest merge rank
// (leftmost among equal ranks) is merged until none applies. Initial symbols are the word's
// UTF-8 characters, or, for byte-level models, its bytes: the vocabulary is then keyed by the
// bytes each token stands for (GPT-2's byte-to-character mapping undone once at load), which
// equals mapping every word to byte-level characters first.
//
// Thread-safety: Encode may run concurrently; the word cache is sharded and locked.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "coordinator/tokenizer/string_hash.h"

namespace strata::tokenizer {

// Everything the BPE model is built from, in the vocabulary's own spelling.
struct BpeModelSpec {
  std::vector<std::pair<std::string, int32_t>> vocab;       // token -> id
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  bool byte_level = false;     // initial symbols are bytes; tokens are GPT-2 byte-level text
  bool byte_fallback = false;  // unknown characters -> <0xXX> tokens
  bool fuse_unk = false;       // consecutive unknown characters -> one unk
  bool ignore_merges = false;  // a word that is a token is emitted whole
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;  // prefix of non-initial symbols (rare)
  std::string end_of_word_suffix;         // suffix of the final symbol (rare)
};

class BpeModel {
 public:
  // Indexes `spec`. Merges naming tokens that are not in the vocabulary are InvalidArgument,
  // naming `source` and the merge.
  static absl::StatusOr<std::unique_ptr<BpeModel>> Create(BpeModelSpec spec,
                                                          std::string_view source);

  // Appends the ids of one word (raw bytes for byte-level models).
  void Encode(std::string_view word, std::vector<int32_t>* ids) const;

  // The id of a vocabulary token in its own spelling, or -1.
  int32_t TokenToId(std::string_view token) const;

  // True when one token can stand for any number of characters (fused unknowns; with byte
  // fallback a character becomes its bytes' tokens, unknown only when one of those is missing).
  bool unbounded_tokens() const {
    const bool fallback_complete =
        spec_.byte_fallback &&
        std::find(fallback_ids_.begin(), fallback_ids_.end(), -1) == fallback_ids_.end();
    return spec_.fuse_unk && unk_id_ >= 0 && !fallback_complete;
  }

 private:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  struct CacheShard {
    std::mutex mu;
    StringMap<std::vector<int32_t>> words;
  };
  static constexpr int kCacheShards = 32;

  BpeModel() = default;
  // Initial symbols of `word` (ids; unknowns resolved).
  void InitialSymbols(std::string_view word, std::vector<int32_t>* symbols) const;
  // Merges `symbols` in place until no merge applies.
  void MergeAll(std::vector<int32_t>* symbols) const;
  void MergeAllWithHeap(std::vector<int32_t>* symbols) const;
  const Merge* FindMerge(int32_t left, int32_t right) const;

  BpeModelSpec spec_;
  StringMap<int32_t> by_spelling_;               // token as written -> id
  StringMap<int32_t> by_key_;                    // token as matched -> id
  absl::flat_hash_map<uint64_t, Merge> merges_;  // (left << 32 | right) -> merge
  std::array<int32_t, 256> byte_ids_;            // byte-level: id of each byte
  std::array<int32_t, 256> fallback_ids_;        // <0xXX> ids, -1 when missing
  int32_t unk_id_ = -1;
  mutable std::array<CacheShard, kCacheShards> cache_;
};

}  // namespace strata::tokenizer

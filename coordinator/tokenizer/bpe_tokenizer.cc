#include "coordinator/tokenizer/bpe_tokenizer.h"

#include <algorithm>
#include <deque>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/status.h"
#include "coordinator/tokenizer/byte_level.h"
#include "coordinator/tokenizer/utf8.h"

namespace strata::tokenizer {
namespace {


// The added tokens matched on raw text (`normalized` false) or on normalized text, whose
// contents are normalized first (as tokenizers' AddedVocabulary does).
std::vector<AddedToken> AddedTokensFor(const std::vector<AddedToken>& tokens,
                                       const Normalizer& normalizer, bool normalized) {
  std::vector<AddedToken> out;
  for (const AddedToken& token : tokens) {
    if (token.normalized != normalized) continue;
    out.push_back(token);
    if (normalized) out.back().content = normalizer.Apply(token.content);
  }
  return out;
}

}  // namespace

BpeTokenizer::BpeTokenizer(BpeTokenizerParts parts, std::unique_ptr<BpeModel> model)
    : model_(std::move(model)),
      normalizer_(std::move(parts.normalizer)),
      pre_tokenizer_(std::move(parts.pre_tokenizer)),
      decoder_(std::move(parts.decoder)),
      raw_added_(AddedTokensFor(parts.added_tokens, normalizer_, false)),
      normalized_added_(AddedTokensFor(parts.added_tokens, normalizer_, true)),
      prefix_ids_(std::move(parts.prefix_ids)),
      suffix_ids_(std::move(parts.suffix_ids)),
      bos_id_(parts.bos_id),
      eos_ids_(parts.eos_ids.begin(), parts.eos_ids.end()) {}

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Create(BpeTokenizerParts parts,
                                                                   std::string_view source) {
  if (parts.model.byte_level != parts.pre_tokenizer.byte_level()) {
    return absl::InternalError(absl::StrCat(Sv(source),
                                            ": model and pre-tokenizer disagree on "
                                            "byte-level input"));
  }
  // The id space: vocabulary and added tokens (which may extend it).
  int64_t size = 0;
  for (const auto& [token, id] : parts.model.vocab) size = std::max<int64_t>(size, id + int64_t{1});
  for (const AddedToken& token : parts.added_tokens) {
    size = std::max<int64_t>(size, token.id + int64_t{1});
  }
  // Ids index tables of `size` entries: a file cannot make them much larger than itself (found
  // by tokenizer_json_fuzz: one id of 2^31 asked for 14 GB). Real vocabularies are dense.
  const int64_t entries =
      static_cast<int64_t>(parts.model.vocab.size()) + static_cast<int64_t>(parts.added_tokens.size());
  if (size > 2 * entries + 1024) {
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(source), ": token ids reach ", size - 1, " but there are only ", entries,
        " tokens (ids must be dense)"));
  }
  std::vector<std::string> id_to_token(size);
  for (const auto& [token, id] : parts.model.vocab) {
    if (id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(Sv(source), ": token '", token, "' has negative id ", id));
    }
    id_to_token[id] = token;
  }
  std::vector<bool> special(size, false);
  std::vector<bool> added(size, false);
  for (const AddedToken& token : parts.added_tokens) {
    if (token.id < 0) {
      return absl::InvalidArgumentError(absl::StrCat(Sv(source), ": added token '", token.content,
                                                     "' has negative id ", token.id));
    }
    id_to_token[token.id] = token.content;
    special[token.id] = token.special;
    added[token.id] = true;
  }
  const auto check = [&](int32_t id, const char* what) -> absl::Status {
    if (id >= -1 && id < size) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(source), ": ", what, " id ", id, " is outside the vocabulary of ", size));
  };
  STRATA_RETURN_IF_ERROR(check(parts.bos_id, "bos"));
  for (int32_t id : parts.eos_ids) STRATA_RETURN_IF_ERROR(check(id, "eos"));
  for (int32_t id : parts.prefix_ids) STRATA_RETURN_IF_ERROR(check(id, "post-processor"));
  for (int32_t id : parts.suffix_ids) STRATA_RETURN_IF_ERROR(check(id, "post-processor"));

  const bool byte_level_decoder = parts.decoder.is_byte_level();
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<BpeModel> model,
                          BpeModel::Create(std::move(parts.model), source));
  auto tok = std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(parts), std::move(model)));
  if (byte_level_decoder) {
    // Added tokens are written as they are (as transformers.js); vocabulary tokens as bytes.
    tok->id_to_bytes_.resize(size);
    for (int32_t id = 0; id < size; ++id) {
      std::optional<std::string> bytes;
      if (!added[id]) bytes = ByteLevelToBytes(id_to_token[id]);
      tok->id_to_bytes_[id] = bytes ? std::move(*bytes) : id_to_token[id];
    }
  }
  // A token's spelling is never shorter than the (normalized) input it stands for: byte-level
  // and metaspace spellings only lengthen it, an unknown character is one "<unk>".
  const int shrink = tok->normalizer_.max_shrink();
  if (shrink > 0 && !tok->pre_tokenizer_.drops_text() && !tok->model_->unbounded_tokens()) {
    size_t longest = 4;  // one unknown character
    for (const std::string& token : id_to_token) longest = std::max(longest, token.size());
    tok->max_bytes_per_token_ = longest * static_cast<size_t>(shrink);
  }
  tok->id_to_token_ = std::move(id_to_token);
  tok->special_ = std::move(special);
  return tok;
}

absl::StatusOr<std::vector<int32_t>> BpeTokenizer::Encode(std::string_view text,
                                                          bool add_special) const {
  return EncodeImpl(text, add_special, /*parse_special=*/false);
}

absl::StatusOr<std::vector<int32_t>> BpeTokenizer::EncodeWithSpecialTokens(std::string_view text,
                                                                           bool add_special) const {
  return EncodeImpl(text, add_special, /*parse_special=*/true);
}

std::vector<int32_t> BpeTokenizer::EncodeImpl(std::string_view text, bool add_special,
                                              bool parse_special) const {
  std::string sanitized;
  if (!IsValidUtf8(text)) {
    AppendUtf8Lossy(text, &sanitized);
    text = sanitized;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special) ids.insert(ids.end(), prefix_ids_.begin(), prefix_ids_.end());
  std::vector<TextSegment> segments;
  raw_added_.Split(text, /*at_start=*/true, parse_special, &segments);
  for (const TextSegment& segment : segments) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
    } else {
      EncodeText(segment.text, segment.at_start, parse_special, &ids);
    }
  }
  if (add_special) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

void BpeTokenizer::EncodeText(std::string_view text, bool at_start, bool parse_special,
                              std::vector<int32_t>* ids) const {
  std::string normalized;
  if (!normalizer_.empty()) {
    normalized = normalizer_.Apply(text);
    text = normalized;
  }
  std::vector<TextSegment> segments;
  if (normalized_added_.empty()) {
    segments.push_back({text, -1, at_start});
  } else {
    normalized_added_.Split(text, at_start, parse_special, &segments);
  }
  std::vector<PreToken> words;
  std::deque<std::string> arena;
  for (const TextSegment& segment : segments) {
    if (segment.id >= 0) {
      ids->push_back(segment.id);
      continue;
    }
    words.clear();
    pre_tokenizer_.Split(segment.text, segment.at_start, &words, &arena);
    for (const PreToken& word : words) model_->Encode(word.text, ids);
  }
}

absl::StatusOr<std::string> BpeTokenizer::Decode(absl::Span<const int32_t> ids,
                                                 bool skip_special) const {
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " is outside the vocabulary of ", vocab_size()));
    }
  }
  if (!id_to_bytes_.empty()) {
    std::string bytes;
    for (int32_t id : ids) {
      if (!(skip_special && special_[id])) bytes.append(id_to_bytes_[id]);
    }
    if (IsValidUtf8(bytes)) return bytes;
    std::string text;
    AppendUtf8Lossy(bytes, &text);
    return text;
  }
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (!(skip_special && special_[id])) tokens.push_back(id_to_token_[id]);
  }
  return decoder_.Decode(std::move(tokens));
}

absl::StatusOr<std::string> BpeTokenizer::TokenToPiece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token id ", id, " is outside the vocabulary of ", vocab_size()));
  }
  return id_to_token_[id];
}

bool BpeTokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && id < vocab_size() && special_[id];
}

}  // namespace strata::tokenizer

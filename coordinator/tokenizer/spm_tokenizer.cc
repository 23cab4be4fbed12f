// SentencePiece BPE, as in SentencePiece's bpe_model.cc:
//  1. Normalize: optionally strip/collapse spaces, prepend a space (add_dummy_prefix), write
//     spaces as U+2581; invalid UTF-8 bytes become U+FFFD.
//  2. Split into symbols: a user-defined piece where one matches (longest first; never merged
//     further), else one UTF-8 character.
//  3. Repeatedly merge the adjacent pair whose concatenation is a vocabulary piece with the
//     highest score (ties: leftmost), using a priority queue of candidate pairs; a popped pair
//     whose symbols have changed since it was queued is stale and skipped.
//  4. Map symbols to ids. Unused pieces are split back into the pair that formed them. A symbol
//     not in the vocabulary is emitted as its UTF-8 bytes (<0xXX> pieces) with byte_fallback,
//     else as one unknown id per run of unknown symbols.
#include "coordinator/tokenizer/spm_tokenizer.h"

#include <algorithm>
#include <queue>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "coordinator/tokenizer/utf8.h"

namespace strata::tokenizer {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581

using RevMerge =
    absl::flat_hash_map<std::string_view, std::pair<std::string_view, std::string_view>>;

// Parses a byte piece "<0xAB>"; -1 when malformed.
int ParseBytePiece(std::string_view piece) {
  if (piece.size() != 6 || !piece.starts_with("<0x") || piece.back() != '>') return -1;
  int value = 0;
  for (char c : piece.substr(3, 2)) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return -1;
    value = value * 16 + (absl::ascii_isdigit(static_cast<unsigned char>(c))
                              ? c - '0'
                              : absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' + 10);
  }
  return value;
}

// Appends `piece` with each U+2581 written as ' '.
void AppendUnescaped(std::string_view piece, std::string* out) {
  for (size_t pos; (pos = piece.find(kSpaceSymbol)) != std::string_view::npos;) {
    out->append(piece.substr(0, pos));
    out->push_back(' ');
    piece.remove_prefix(pos + kSpaceSymbol.size());
  }
  out->append(piece);
}

struct Symbol {
  std::string_view text;  // view into the normalized string
  int prev;
  int next;
  bool frozen;  // user-defined piece: never merged
};

struct Candidate {
  float score;
  int left;
  int right;
  size_t size;  // bytes of the merged piece, to detect stale entries
};

struct CandidateOrder {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

SpmTokenizer::SpmTokenizer(SpmVocab vocab) : vocab_(std::move(vocab)) { byte_to_id_.fill(-1); }

absl::StatusOr<std::unique_ptr<SpmTokenizer>> SpmTokenizer::Create(SpmVocab vocab,
                                                                   const std::string& source) {
  // Added tokens past the model's pieces extend the vocabulary (gaps become unused pieces).
  const size_t model_pieces = vocab.pieces.size();
  for (const AddedToken& t : vocab.added) {
    if (t.id < 0 || t.id > (1 << 24) || t.content.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": added token '", t.content,
                                                     "' has id ", t.id));
    }
    if (static_cast<size_t>(t.id) < vocab.pieces.size()) continue;
    while (vocab.pieces.size() < static_cast<size_t>(t.id)) {
      vocab.pieces.push_back(absl::StrCat("<unused_added_", vocab.pieces.size(), ">"));
      vocab.scores.push_back(0.0f);
      vocab.types.push_back(PieceType::kUnused);
    }
    vocab.pieces.push_back(t.content);
    vocab.scores.push_back(0.0f);
    vocab.types.push_back(t.special ? PieceType::kControl : PieceType::kUserDefined);
  }
  const size_t n = vocab.pieces.size();
  if (n == 0 || n > static_cast<size_t>(INT32_MAX)) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": vocabulary is empty or too large"));
  }
  if (vocab.scores.size() != n || vocab.types.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": vocabulary has ", n, " pieces but ", vocab.scores.size(),
                     " scores and ", vocab.types.size(), " types"));
  }
  const auto check_id = [&](int32_t id, const char* what, bool optional) -> absl::Status {
    if ((optional && id == -1) || (id >= 0 && static_cast<size_t>(id) < n)) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", what, " id ", id, " is outside the vocabulary of ", n));
  };
  STRATA_RETURN_IF_ERROR(check_id(vocab.unk_id, "unknown-token", /*optional=*/false));
  STRATA_RETURN_IF_ERROR(check_id(vocab.bos_id, "bos", /*optional=*/true));
  STRATA_RETURN_IF_ERROR(check_id(vocab.eos_id, "eos", /*optional=*/true));
  for (int32_t id : vocab.extra_eos_ids) {
    STRATA_RETURN_IF_ERROR(check_id(id, "end-of-generation", /*optional=*/false));
  }

  auto tok = std::unique_ptr<SpmTokenizer>(new SpmTokenizer(std::move(vocab)));
  tok->added_from_ = static_cast<int32_t>(model_pieces);
  const SpmVocab& v = tok->vocab_;
  for (size_t i = 0; i < model_pieces; ++i) {  // added tokens never enter BPE
    const auto id = static_cast<int32_t>(i);
    switch (v.types[i]) {
      case PieceType::kUserDefined:
        tok->user_defined_.push_back(v.pieces[i]);
        [[fallthrough]];
      case PieceType::kNormal:
      case PieceType::kUnused:
        tok->piece_to_id_.try_emplace(v.pieces[i], id);  // first wins, as in llama.cpp
        break;
      case PieceType::kByte: {
        const int byte = ParseBytePiece(v.pieces[i]);
        if (byte < 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              source, ": byte piece ", i, " is '", v.pieces[i], "', expected <0xHH>"));
        }
        tok->byte_to_id_[byte] = id;
        break;
      }
      case PieceType::kUnknown:
      case PieceType::kControl:
        break;
    }
  }
  std::stable_sort(tok->user_defined_.begin(), tok->user_defined_.end(),
                   [](std::string_view a, std::string_view b) { return a.size() > b.size(); });
  // What is cut out of the text before BPE: control pieces (special) and the added tokens
  // with their own flags (which win for the same content).
  std::vector<AddedToken> control = v.added;
  absl::flat_hash_set<std::string_view> added_contents;
  for (const AddedToken& t : v.added) {
    added_contents.insert(t.content);
    tok->has_plain_added_ = tok->has_plain_added_ || !t.special;
  }
  for (size_t i = 0; i < n; ++i) {
    if (v.types[i] == PieceType::kControl && !added_contents.contains(v.pieces[i])) {
      AddedToken& token = control.emplace_back();
      token.content = v.pieces[i];
      token.id = static_cast<int32_t>(i);
      token.special = true;
    }
  }
  tok->control_ = std::make_unique<AddedTokenMatcher>(control);
  if (v.eos_id >= 0) tok->eos_ids_.insert(v.eos_id);
  tok->eos_ids_.insert(v.extra_eos_ids.begin(), v.extra_eos_ids.end());
  // A piece is never shorter than the text it stands for ("\u2581" for one space, "<0x0A>"
  // for one byte, one unknown character per <unk>), unless runs of spaces collapse.
  if (!v.remove_extra_whitespaces) {
    size_t longest = 4;
    for (const std::string& piece : v.pieces) longest = std::max(longest, piece.size());
    tok->max_bytes_per_token_ = longest;
  }
  return tok;
}

size_t SpmTokenizer::MatchUserDefined(std::string_view s) const {
  for (std::string_view piece : user_defined_) {
    if (!piece.empty() && s.starts_with(piece)) return piece.size();
  }
  return 0;
}

std::string SpmTokenizer::Normalize(std::string_view text, bool dummy_prefix) const {
  const bool collapse = vocab_.remove_extra_whitespaces;
  const std::string_view space = vocab_.escape_whitespaces ? kSpaceSymbol : " ";
  std::string out;
  if (collapse) {
    while (text.starts_with(' ')) text.remove_prefix(1);
  }
  if (text.empty()) return out;
  if (vocab_.add_dummy_prefix && dummy_prefix) out.append(space);
  bool prev_space = collapse;
  while (!text.empty()) {
    const size_t len = ValidCharLength(text);
    const std::string_view unit = len == 0 ? kReplacementChar : text.substr(0, len);
    text.remove_prefix(len == 0 ? 1 : len);
    if (unit == " ") {
      if (!prev_space) out.append(space);
      prev_space = collapse;
    } else {
      out.append(unit);
      prev_space = false;
    }
  }
  if (collapse) {
    while (out.ends_with(space)) out.erase(out.size() - space.size());
  }
  return out;
}

void SpmTokenizer::EncodeNormalized(std::string_view normalized,
                                    std::vector<int32_t>* ids) const {
  std::vector<Symbol> symbols;
  for (std::string_view rest = normalized; !rest.empty();) {
    size_t len = MatchUserDefined(rest);
    const bool frozen = len > 0;
    if (!frozen) len = std::max<size_t>(ValidCharLength(rest), 1);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({rest.substr(0, len), index - 1, -1, frozen});
    rest.remove_prefix(len);
    if (!rest.empty()) symbols.back().next = index + 1;
  }

  std::priority_queue<Candidate, std::vector<Candidate>, CandidateOrder> agenda;
  RevMerge rev_merge;
  const auto try_pair = [&](int left, int right) {
    if (left < 0 || right < 0 || symbols[left].frozen || symbols[right].frozen) return;
    const std::string_view merged(symbols[left].text.data(),
                                  symbols[left].text.size() + symbols[right].text.size());
    const auto it = piece_to_id_.find(merged);
    if (it == piece_to_id_.end()) return;
    agenda.push({vocab_.scores[it->second], left, right, merged.size()});
    if (vocab_.types[it->second] == PieceType::kUnused) {
      rev_merge[merged] = {symbols[left].text, symbols[right].text};
    }
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_pair(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!agenda.empty()) {
    const Candidate top = agenda.top();
    agenda.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (left.text.empty() || right.text.empty() ||
        left.text.size() + right.text.size() != top.size) {
      continue;  // stale
    }
    left.text = std::string_view(left.text.data(), top.size);
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    right.text = {};
    try_pair(left.prev, top.left);
    try_pair(top.left, left.next);
  }

  for (int i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) {
    EmitSymbol(symbols[i].text, rev_merge, ids);
  }
}

void SpmTokenizer::EmitSymbol(std::string_view symbol, const RevMerge& rev_merge,
                              std::vector<int32_t>* ids) const {
  const auto it = piece_to_id_.find(symbol);
  if (it != piece_to_id_.end()) {
    const auto split = rev_merge.find(symbol);
    if (vocab_.types[it->second] == PieceType::kUnused && split != rev_merge.end()) {
      EmitSymbol(split->second.first, rev_merge, ids);
      EmitSymbol(split->second.second, rev_merge, ids);
    } else {
      ids->push_back(it->second);
    }
    return;
  }
  if (vocab_.byte_fallback) {
    for (char c : symbol) {
      const int32_t id = byte_to_id_[static_cast<uint8_t>(c)];
      ids->push_back(id >= 0 ? id : vocab_.unk_id);
    }
    return;
  }
  // Runs of unknown symbols become one unknown id. (The unknown piece itself is never in
  // piece_to_id_, so a preceding unk_id can only come from an unknown symbol.)
  if (ids->empty() || ids->back() != vocab_.unk_id) ids->push_back(vocab_.unk_id);
}

absl::StatusOr<std::vector<int32_t>> SpmTokenizer::Encode(std::string_view text,
                                                          bool add_special) const {
  return EncodeImpl(text, add_special, /*parse_special=*/false);
}

absl::StatusOr<std::vector<int32_t>> SpmTokenizer::EncodeWithSpecialTokens(
    std::string_view text, bool add_special) const {
  return EncodeImpl(text, add_special, /*parse_special=*/true);
}

// With parse_special, control pieces written in the text are cut out first; as llama.cpp, each
// piece of text at the start or after a control token gets the dummy prefix.
std::vector<int32_t> SpmTokenizer::EncodeImpl(std::string_view text, bool add_special,
                                              bool parse_special) const {
  std::vector<int32_t> ids;
  if (add_special && vocab_.add_bos && vocab_.bos_id >= 0) ids.push_back(vocab_.bos_id);
  if (!parse_special && !has_plain_added_) {
    EncodeNormalized(Normalize(text, /*dummy_prefix=*/true), &ids);
  } else {
    std::vector<TextSegment> segments;
    control_->Split(text, /*at_start=*/true, parse_special, &segments);
    bool after_token = true;
    for (const TextSegment& segment : segments) {
      if (segment.id >= 0) {
        ids.push_back(segment.id);
      } else {
        const bool prefix =
            vocab_.prefix_every_segment ? after_token : segment.text.data() == text.data();
        EncodeNormalized(Normalize(segment.text, prefix), &ids);
      }
      after_token = segment.id >= 0;
    }
  }
  if (add_special && vocab_.add_eos && vocab_.eos_id >= 0) ids.push_back(vocab_.eos_id);
  return ids;
}

absl::StatusOr<std::string> SpmTokenizer::Decode(absl::Span<const int32_t> ids,
                                                 bool skip_special) const {
  std::string text;
  std::string bytes;  // consecutive byte pieces, decoded together
  // SentencePiece drops the space that add_dummy_prefix added: the leading U+2581 of the first
  // piece that reaches an still-empty text, once.
  bool strip_leading = vocab_.add_dummy_prefix || vocab_.remove_extra_whitespaces;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " is outside the vocabulary of ", vocab_size()));
    }
    const PieceType type = vocab_.types[id];
    std::string_view piece = vocab_.pieces[id];
    if (type == PieceType::kByte) {
      bytes.push_back(static_cast<char>(ParseBytePiece(piece)));
      continue;
    }
    AppendSanitized(bytes, &text);
    bytes.clear();
    if (type == PieceType::kControl) {
      if (!skip_special) text.append(piece);
      continue;
    }
    if (type == PieceType::kUserDefined && id >= added_from_) {  // an added token: verbatim
      text.append(piece);
      continue;
    }
    if (type == PieceType::kUnknown) {
      text.append(vocab_.unk_surface);
      continue;
    }
    if (strip_leading && text.empty()) {
      if (piece.starts_with(kSpaceSymbol)) piece.remove_prefix(kSpaceSymbol.size());
      strip_leading = false;
    }
    AppendUnescaped(piece, &text);
  }
  AppendSanitized(bytes, &text);
  return text;
}

absl::StatusOr<std::string> SpmTokenizer::TokenToPiece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token id ", id, " is outside the vocabulary of ", vocab_size()));
  }
  return vocab_.pieces[id];
}

bool SpmTokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && id < vocab_size() && vocab_.types[id] == PieceType::kControl;
}

}  // namespace strata::tokenizer

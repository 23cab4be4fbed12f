// Fuzz target: tokenizer encode and decode, and streaming detokenization. The tokenizers are
// the small model's (GGUF SentencePiece vocabulary with byte fallback) and, when ../shared/data
// is present, Llama 3 and Qwen 3 (tokenizer.json, byte-level BPE), Gemma 3 (tokenizer.json,
// SentencePiece-style BPE), Llama 2 (tokenizer.model) and GPT-2 (GGUF). The first input byte
// picks one; the rest is text to encode and, read as little-endian int32s, ids to decode.
//
// Properties beyond "no crash": encoding valid UTF-8 succeeds; on a lossless tokenizer (Llama 3:
// byte-level, no normalizer) decoding the ids gives the text back; streaming detokenization
// of any valid ids equals decoding them at once (IncrementalDetokenizer's invariant).
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/tokenizer/incremental_detokenizer.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "coordinator/tokenizer/utf8.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/testing/shared_data.h"

namespace strata::fuzz {
namespace {

namespace fs = std::filesystem;

struct Loaded {
  std::string name;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  bool lossless = false;
};

void Add(std::vector<Loaded>& out, const std::string& name, const fs::path& path,
         bool lossless) {
  if (path.empty()) return;
  auto tok = tokenizer::LoadTokenizer(path.string());
  if (!tok.ok()) PropertyFailed(absl::StrCat(name, ": ", tok.status().ToString()));
  out.push_back({name, *std::move(tok), lossless});
}

// A Hugging Face tokenizer folder assembled from ../shared/data (tokenizer.json may be .xz).
fs::path HfDir(const std::string& name) {
  const fs::path json = SharedData("tokenizers/hf/" + name + "/tokenizer.json");
  const fs::path config = SharedData("tokenizers/hf/" + name + "/tokenizer_config.json");
  if (json.empty() || config.empty()) return {};
  const fs::path dir = testing::TempDir("fuzz-hf-" + name);
  fs::copy_file(json, dir / "tokenizer.json");
  fs::copy_file(config, dir / "tokenizer_config.json");
  return dir;
}

const std::vector<Loaded>& Tokenizers() {
  static const std::vector<Loaded> loaded = [] {
    QuietLogs();
    std::vector<Loaded> out;
    Add(out, "small", SmallModel(), false);
    Add(out, "llama3", HfDir("llama3"), true);
    Add(out, "qwen3", HfDir("qwen3"), false);
    Add(out, "gemma3", HfDir("gemma3"), false);
    Add(out, "llama2", SharedData("tokenizers/sentencepiece/llama2.model"), false);
    Add(out, "gpt2", SharedData("tokenizers/llamacpp/ggml-vocab-gpt-2.gguf"), false);
    return out;
  }();
  return loaded;
}

}  // namespace
}  // namespace strata::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  strata::fuzz::Tokenizers();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  using fuzz::PropertyFailed;
  if (size < 2) return 0;
  const auto& all = fuzz::Tokenizers();
  const fuzz::Loaded& t = all[data[0] % all.size()];
  const bool add_special = data[1] & 1, skip_special = data[1] & 2;
  const std::string text(reinterpret_cast<const char*>(data + 2), size - 2);

  auto ids = (data[1] & 4) ? t.tokenizer->EncodeWithSpecialTokens(text, add_special)
                           : t.tokenizer->Encode(text, add_special);
  if (!ids.ok()) {
    if (tokenizer::IsValidUtf8(text)) {
      PropertyFailed(absl::StrCat(t.name, ": encoding valid UTF-8 failed: ",
                                  ids.status().ToString()));
    }
  } else {
    for (int32_t id : *ids) {
      if (id < 0 || id >= t.tokenizer->vocab_size()) {
        PropertyFailed(absl::StrCat(t.name, ": encode produced id ", id));
      }
    }
    auto decoded = t.tokenizer->Decode(*ids, /*skip_special=*/add_special);
    if (!decoded.ok()) PropertyFailed(absl::StrCat(t.name, ": decode of encoded ids failed"));
    if (t.lossless && !add_special && !(data[1] & 4) && tokenizer::IsValidUtf8(text) &&
        *decoded != text) {
      PropertyFailed(absl::StrCat(t.name, ": decode(encode(text)) != text for '", text, "'"));
    }
  }

  // The same bytes as ids: out-of-range ids must be refused, valid ones streamed exactly.
  std::vector<int32_t> raw((size - 2) / 4);
  if (!raw.empty()) std::memcpy(raw.data(), data + 2, raw.size() * 4);
  bool valid = true;
  for (int32_t& id : raw) {
    if (data[1] & 8) id = static_cast<int32_t>(static_cast<uint32_t>(id) % t.tokenizer->vocab_size());
    valid = valid && id >= 0 && id < t.tokenizer->vocab_size();
  }
  auto whole = t.tokenizer->Decode(raw, skip_special);
  if (whole.ok() != valid) PropertyFailed(absl::StrCat(t.name, ": Decode accepted a bad id or refused a good one"));
  if (!valid) return 0;
  tokenizer::IncrementalDetokenizer stream(*t.tokenizer, skip_special);
  std::string streamed;
  for (int32_t id : raw) {
    auto piece = stream.Add(id);
    if (!piece.ok()) PropertyFailed(absl::StrCat(t.name, ": Add failed: ", piece.status().ToString()));
    streamed += *piece;
  }
  auto rest = stream.Finish();
  if (!rest.ok()) PropertyFailed(absl::StrCat(t.name, ": Finish failed"));
  streamed += *rest;
  if (streamed != *whole) {
    PropertyFailed(absl::StrCat(t.name, ": streamed '", streamed, "' != decoded '", *whole, "'"));
  }
  if (!tokenizer::IsValidUtf8(streamed)) PropertyFailed(absl::StrCat(t.name, ": invalid UTF-8 out"));
  return 0;
}

#include "worker/model/synthetic_model.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/formats/gguf_writer.h"
#include "common/philox.h"
#include "common/status.h"

namespace strata {
namespace {

constexpr std::string_view kChatTemplate =
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}<<SYS>>\n{{ message['content'] }}\n<</SYS>>\n\n"
    "{% elif message['role'] == 'user' %}[INST] {{ message['content'] }} [/INST]"
    "{% else %} {{ message['content'] }}{{ eos_token }}{% endif %}{% endfor %}";


struct Preset {
  std::string_view name;
  SyntheticModelSpec spec;
};

SyntheticModelSpec Spec(std::string name, int64_t vocab, int64_t hidden, int64_t ffn,
                        int64_t layers, int64_t heads, int64_t kv_heads, int64_t ctx) {
  SyntheticModelSpec s;
  s.name = std::move(name);
  s.vocab_size = vocab;
  s.hidden_size = hidden;
  s.intermediate_size = ffn;
  s.num_layers = layers;
  s.num_heads = heads;
  s.num_kv_heads = kv_heads;
  s.context_length = ctx;
  return s;
}

const std::vector<Preset>& Presets() {
  static const std::vector<Preset> presets = {
      {"tiny", Spec("strata-tiny-random", 380, 128, 352, 4, 8, 4, 2048)},
      {"bench-500m", Spec("strata-bench-500m-random", 32000, 1024, 2816, 6, 16, 4, 2048)},
      {"tinyllama", Spec("strata-tinyllama-shape-random", 32000, 2048, 5632, 22, 32, 4, 2048)},
      {"llama3-8b", [] {
         SyntheticModelSpec m =
             Spec("strata-llama3-8b-shape-random", 128256, 4096, 14336, 32, 32, 8, 8192);
         m.rope_theta = 500000.0;
         return m;
       }()},
      {"mixtral-2l", [] {
         SyntheticModelSpec m = Spec("strata-mixtral-2l-random", 32000, 4096, 14336, 2, 32, 8, 4096);
         m.num_experts = 8;
         m.experts_per_token = 2;
         return m;
       }()},
  };
  return presets;
}

// SentencePiece-style vocabulary: <unk>, <s>, </s>, the 256 byte tokens, the printable ASCII
// characters and "▁"-prefixed letters, then filler pieces that text never produces.
// <unk>, <s>, </s> and the 256 byte tokens lead the vocabulary.
constexpr int64_t kSpecialAndByteTokens = 259;

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<double> scores;
  std::vector<int64_t> types;  // llama.cpp token types: 1 normal, 2 unknown, 3 control, 6 byte
};

Vocab MakeVocab(int64_t size) {
  Vocab v;
  auto add = [&](std::string piece, double score, int64_t type) {
    v.tokens.push_back(std::move(piece));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0, 2);
  add("<s>", 0, 3);
  add("</s>", 0, 3);
  for (int b = 0; b < 256; ++b) add(absl::StrFormat("<0x%02X>", b), 0, 6);
  const std::string space = "\xe2\x96\x81";  // U+2581, SentencePiece's space
  add(space, -1, 1);
  for (char c = 'a'; c <= 'z'; ++c) add(space + c, -2, 1);
  for (char c = 33; c < 127; ++c) add(std::string(1, c), -3, 1);
  for (int64_t i = 0; static_cast<int64_t>(v.tokens.size()) < size; ++i) {
    add(absl::StrCat("<filler_", i, ">"), -1000.0 - static_cast<double>(i), 1);
  }
  v.tokens.resize(size);
  v.scores.resize(size);
  v.types.resize(size);
  return v;
}

// Streams a tensor of uniform values in [-amplitude, amplitude] (or all `fill` when
// amplitude is 0), converted to `dtype` row by row. The first `zero_rows` rows are zero.
TensorProducer RandomTensor(DType dtype, int64_t rows, int64_t cols, uint64_t seed,
                            uint32_t tensor_id, float amplitude, float fill = 0.0f,
                            int64_t zero_rows = 0) {
  return [=](ChunkWriter write) -> absl::Status {
    std::vector<float> row(cols);
    std::vector<std::byte> packed(ElementsToBytes(dtype, cols));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const uint32_t index = static_cast<uint32_t>(r * cols + c);
        row[c] = r < zero_rows     ? 0.0f
                 : amplitude == 0.0f ? fill
                                     : static_cast<float>(
                                           (2.0 * PhiloxUniform(seed, tensor_id, index) - 1.0) *
                                           amplitude);
      }
      QuantizeRow(dtype, row.data(), packed.data(), cols);
      STRATA_RETURN_IF_ERROR(write(packed.data(), static_cast<int64_t>(packed.size())));
    }
    return absl::OkStatus();
  };
}

// A stable fingerprint of the spec and the generator's format version, so a cached default
// model is regenerated whenever either changes.
uint64_t Fingerprint(const SyntheticModelSpec& s) {
  constexpr uint64_t kFormatVersion = 3;  // 3: chat template
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (uint64_t v : {kFormatVersion, static_cast<uint64_t>(s.vocab_size),
                     static_cast<uint64_t>(s.hidden_size), static_cast<uint64_t>(s.intermediate_size),
                     static_cast<uint64_t>(s.num_layers), static_cast<uint64_t>(s.num_heads),
                     static_cast<uint64_t>(s.num_kv_heads), static_cast<uint64_t>(s.context_length),
                     static_cast<uint64_t>(s.rope_theta), static_cast<uint64_t>(s.dtype), s.seed,
                     static_cast<uint64_t>(s.num_experts), static_cast<uint64_t>(s.experts_per_token)}) {
    for (int i = 0; i < 8; ++i) h = (h ^ ((v >> (8 * i)) & 0xff)) * 1099511628211ull;
  }
  return h;
}

}  // namespace

absl::StatusOr<SyntheticModelSpec> SyntheticPreset(std::string_view name) {
  for (const Preset& p : Presets()) {
    if (p.name == name) return p.spec;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown synthetic model preset '", std::string(name),
                                                 "' (known: ", absl::StrJoin(SyntheticPresetNames(), ", "), ")"));
}

std::vector<std::string> SyntheticPresetNames() {
  std::vector<std::string> names;
  for (const Preset& p : Presets()) names.emplace_back(p.name);
  return names;
}

absl::Status WriteSyntheticModel(const SyntheticModelSpec& s, const std::string& path) {
  if (s.vocab_size < 259 || s.hidden_size % s.num_heads != 0 || s.num_heads % s.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "synthetic model '", s.name, "': needs vocab >= 259, hidden divisible by heads, heads by kv heads"));
  }
  const int64_t head_dim = s.hidden_size / s.num_heads;
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetString("general.name", s.name);
  w.SetString("general.description", "random weights generated by strata; output is not meaningful");
  w.SetUint32("llama.context_length", static_cast<uint32_t>(s.context_length));
  w.SetUint32("llama.embedding_length", static_cast<uint32_t>(s.hidden_size));
  w.SetUint32("llama.feed_forward_length", static_cast<uint32_t>(s.intermediate_size));
  w.SetUint32("llama.block_count", static_cast<uint32_t>(s.num_layers));
  w.SetUint32("llama.attention.head_count", static_cast<uint32_t>(s.num_heads));
  w.SetUint32("llama.attention.head_count_kv", static_cast<uint32_t>(s.num_kv_heads));
  w.SetUint32("llama.rope.dimension_count", static_cast<uint32_t>(head_dim));
  w.SetFloat32("llama.rope.freq_base", static_cast<float>(s.rope_theta));
  w.SetFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  if (s.num_experts > 0) {
    w.SetUint32("llama.expert_count", static_cast<uint32_t>(s.num_experts));
    w.SetUint32("llama.expert_used_count", static_cast<uint32_t>(s.experts_per_token));
  }
  Vocab vocab = MakeVocab(s.vocab_size);
  w.SetString("tokenizer.ggml.model", "llama");
  w.SetStringArray("tokenizer.ggml.tokens", std::move(vocab.tokens));
  w.SetFloat32Array("tokenizer.ggml.scores", std::move(vocab.scores));
  w.SetIntArray("tokenizer.ggml.token_type", std::move(vocab.types));
  w.SetUint32("tokenizer.ggml.unknown_token_id", 0);
  w.SetUint32("tokenizer.ggml.bos_token_id", 1);
  w.SetUint32("tokenizer.ggml.eos_token_id", 2);
  // A Llama-2-style chat template, so chat requests work against the embedded model too.
  w.SetString("tokenizer.chat_template", std::string(kChatTemplate));
  w.SetBool("tokenizer.ggml.add_bos_token", true);

  uint32_t id = 0;
  auto matrix = [&](std::string name, int64_t rows, int64_t cols, float amplitude) {
    return w.AddTensorProducer(std::move(name), s.dtype, {rows, cols},
                               RandomTensor(s.dtype, rows, cols, s.seed, id++, amplitude));
  };
  auto norm = [&](std::string name) {
    return w.AddTensorProducer(std::move(name), DType::kF32, {s.hidden_size},
                               RandomTensor(DType::kF32, 1, s.hidden_size, s.seed, id++, 0.0f, 1.0f));
  };
  // Uniform amplitudes that keep activations O(1): 1/sqrt(fan_in) scaled by sqrt(3).
  const float in_amp = std::sqrt(3.0f / static_cast<float>(s.hidden_size));
  const float ffn_amp = std::sqrt(3.0f / static_cast<float>(s.intermediate_size));
  const int64_t q_dim = s.num_heads * head_dim, kv_dim = s.num_kv_heads * head_dim;
  STRATA_RETURN_IF_ERROR(matrix("token_embd.weight", s.vocab_size, s.hidden_size, 1.0f));
  for (int64_t l = 0; l < s.num_layers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    STRATA_RETURN_IF_ERROR(norm(p + "attn_norm.weight"));
    STRATA_RETURN_IF_ERROR(matrix(p + "attn_q.weight", q_dim, s.hidden_size, in_amp));
    STRATA_RETURN_IF_ERROR(matrix(p + "attn_k.weight", kv_dim, s.hidden_size, in_amp));
    STRATA_RETURN_IF_ERROR(matrix(p + "attn_v.weight", kv_dim, s.hidden_size, in_amp));
    STRATA_RETURN_IF_ERROR(matrix(p + "attn_output.weight", s.hidden_size, q_dim, in_amp));
    STRATA_RETURN_IF_ERROR(norm(p + "ffn_norm.weight"));
    if (s.num_experts > 0) {
      // The router in f32, every expert's matrices stacked [experts, rows, cols].
      const int64_t e = s.num_experts, f = s.intermediate_size, h = s.hidden_size;
      STRATA_RETURN_IF_ERROR(w.AddTensorProducer(
          p + "ffn_gate_inp.weight", DType::kF32, {e, h},
          RandomTensor(DType::kF32, e, h, s.seed, id++, in_amp)));
      auto experts = [&](std::string name, int64_t rows, int64_t cols, float amplitude) {
        return w.AddTensorProducer(std::move(name), s.dtype, {e, rows, cols},
                                   RandomTensor(s.dtype, e * rows, cols, s.seed, id++, amplitude));
      };
      STRATA_RETURN_IF_ERROR(experts(p + "ffn_gate_exps.weight", f, h, in_amp));
      STRATA_RETURN_IF_ERROR(experts(p + "ffn_up_exps.weight", f, h, in_amp));
      STRATA_RETURN_IF_ERROR(experts(p + "ffn_down_exps.weight", h, f, ffn_amp));
      continue;
    }
    STRATA_RETURN_IF_ERROR(matrix(p + "ffn_gate.weight", s.intermediate_size, s.hidden_size, in_amp));
    STRATA_RETURN_IF_ERROR(matrix(p + "ffn_up.weight", s.intermediate_size, s.hidden_size, in_amp));
    STRATA_RETURN_IF_ERROR(matrix(p + "ffn_down.weight", s.hidden_size, s.intermediate_size, ffn_amp));
  }
  STRATA_RETURN_IF_ERROR(norm("output_norm.weight"));
  // The specials and byte tokens get zero logits, so greedy output stays within the printable
  // pieces: random text, but readable as such.
  STRATA_RETURN_IF_ERROR(w.AddTensorProducer(
      "output.weight", s.dtype, {s.vocab_size, s.hidden_size},
      RandomTensor(s.dtype, s.vocab_size, s.hidden_size, s.seed, id++, in_amp, 0.0f,
                   kSpecialAndByteTokens)));
  return w.Write(path);
}

absl::StatusOr<std::string> EnsureDefaultModel() {
  std::filesystem::path dir;
  if (const char* env = std::getenv("STRATA_CACHE_DIR"); env != nullptr && *env != '\0') {
    dir = env;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    dir = std::filesystem::path(home) / ".cache" / "strata";
  } else {
    dir = std::filesystem::temp_directory_path() / "strata-cache";
  }
  dir /= "models";
  STRATA_ASSIGN_OR_RETURN(const SyntheticModelSpec spec, SyntheticPreset("tiny"));
  const std::filesystem::path path =
      dir / absl::StrFormat("%s-%08x.gguf", spec.name, Fingerprint(spec) & 0xffffffffu);
  if (std::filesystem::exists(path)) return path.string();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir.string(), ": cannot create: ", ec.message()));
  STRATA_RETURN_IF_ERROR(WriteSyntheticModel(spec, path.string()));
  return path.string();
}

}  // namespace strata

#include "common/model_config.h"

#include <cmath>

#include "common/formats/gguf.h"
#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"

namespace strata {
namespace {

TEST(ModelConfigTest, Llama31FromRealConfigAndGenerationConfig) {
  STRATA_SHARED_DATA_OR_SKIP(dir, "configs/meta-llama__Llama-3.1-8B-Instruct");
  auto c = LoadHfConfig(dir.string());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "LlamaForCausalLM");
  EXPECT_EQ(c->vocab_size, 128256);
  EXPECT_EQ(c->num_layers, 32);
  EXPECT_EQ(c->num_kv_heads, 8);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->GqaGroup(), 4);
  EXPECT_EQ(c->bos_token_id, 128000);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int32_t>{128001, 128008, 128009}));
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
  EXPECT_FALSE(c->tie_word_embeddings);
}

TEST(ModelConfigTest, OtherLlamaFamilyConfigsParse) {
  for (const char* name : {"configs/meta-llama__Llama-2-7b-chat-hf", "configs/reconstructed__Llama-3.1-405B-Instruct",
                           "configs/mistralai__Mistral-7B-Instruct-v0.3", "configs/Qwen__Qwen3-8B"}) {
    STRATA_SHARED_DATA_OR_SKIP(dir, name);
    auto c = LoadHfConfig(dir.string());
    EXPECT_TRUE(c.ok()) << name << ": " << c.status();
  }
}

TEST(ModelConfigTest, Llama3InvFreqMatchesLlamaCppRopeFactors) {
  // llama.cpp's converter writes the llama3 scaling as per-frequency divisors (rope_freqs);
  // our inv_freq from config.json must equal theta^(-2i/d) / factor[i].
  STRATA_SHARED_DATA_OR_SKIP(hf, "fixtures/llama/hf");
  STRATA_SHARED_DATA_OR_SKIP(gguf_path, "fixtures/llama/model.gguf");
  auto c = LoadHfConfig(hf.string());
  ASSERT_TRUE(c.ok()) << c.status();
  auto gguf = GgufFile::Open(gguf_path.string());
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  auto factors = (*gguf)->Get("rope_freqs.weight");
  ASSERT_TRUE(factors.ok()) << factors.status();
  const auto* f = reinterpret_cast<const float*>(factors->data);
  auto rope = ComputeRopeFrequencies(*c);
  ASSERT_TRUE(rope.ok()) << rope.status();
  const std::vector<float>& inv = rope->inv_freq;
  ASSERT_EQ(static_cast<int64_t>(inv.size()), factors->NumElements());
  for (size_t i = 0; i < inv.size(); ++i) {
    const double base = std::pow(c->rope_theta, -2.0 * i / c->head_dim);
    EXPECT_NEAR(inv[i], base / f[i], 1e-6 * base) << i;
  }
}

TEST(ModelConfigTest, GgufMetadataGivesSameConfigAsHf) {
  STRATA_SHARED_DATA_OR_SKIP(hf, "models/stories260K/hf");
  STRATA_SHARED_DATA_OR_SKIP(gguf_path, "models/stories260K/stories260K.gguf");
  auto a = LoadModelConfig(hf.string());
  auto b = LoadModelConfig(gguf_path.string());
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->architecture, b->architecture);
  EXPECT_EQ(a->vocab_size, b->vocab_size);
  EXPECT_EQ(a->hidden_size, b->hidden_size);
  EXPECT_EQ(a->intermediate_size, b->intermediate_size);
  EXPECT_EQ(a->num_layers, b->num_layers);
  EXPECT_EQ(a->num_heads, b->num_heads);
  EXPECT_EQ(a->num_kv_heads, b->num_kv_heads);
  EXPECT_EQ(a->max_position_embeddings, b->max_position_embeddings);
  EXPECT_NEAR(a->rms_norm_eps, b->rms_norm_eps, 1e-9);
  EXPECT_EQ(a->rope_layout, RopeLayout::kHalfSplit);
  EXPECT_EQ(b->rope_layout, RopeLayout::kInterleaved);
  EXPECT_TRUE(a->tie_word_embeddings);
}

TEST(ModelConfigTest, BadConfigsNameTheField) {
  struct Case {
    const char* json;
    const char* expect;
  };
  const Case cases[] = {
      {"{", "not valid JSON"},
      {"[]", "JSON object"},
      {R"({"hidden_size": 64})", "architectures"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": "64"})", "hidden_size"},
      // Found by gguf_fuzz: a 2^40 head_dim passed and its RoPE table took a minute to build.
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 64,
          "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 8,
          "head_dim": 1099511627776})", "head_dim 1099511627776 is implausibly large"},
      // Found by hf_config_fuzz: an integral double beyond int64 was cast (undefined behaviour).
      {R"({"architectures": ["LlamaForCausalLM"], "max_position_embeddings": 131E072})",
       "max_position_embeddings"},
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 64,
          "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 8,
          "num_key_value_heads": 3})", "multiple of num_key_value_heads"},
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 64,
          "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 8,
          "eos_token_id": 99})", "eos_token_id 99"},
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 64,
          "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 8,
          "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}})", "dynamic"},
  };
  for (const Case& c : cases) {
    auto r = ParseHfConfig(c.json, "test/config.json");
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status();
    EXPECT_NE(r.status().message().find("test/config.json"), std::string::npos) << r.status();
  }
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

// YaRN and LongRoPE as transformers computes them (_compute_yarn_parameters,
// _compute_longrope_parameters); the expected values were computed separately in Python from
// those functions' formulas (float64).
TEST(RopeFrequenciesTest, YarnFromConfigJson) {
  auto c = ParseHfConfig(R"({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
      "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
      "num_attention_heads": 2, "head_dim": 8, "rope_theta": 10000.0,
      "max_position_embeddings": 1024,
      "rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                       "original_max_position_embeddings": 256}})", "yarn");
  ASSERT_TRUE(c.ok()) << c.status();
  auto f = ComputeRopeFrequencies(*c);
  ASSERT_TRUE(f.ok()) << f.status();
  const float want[] = {1.0f, 0.0625f, 0.0025f, 0.00025f};
  ASSERT_EQ(f->inv_freq.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(f->inv_freq[i], want[i], 1e-6 * want[i]) << i;
  EXPECT_NEAR(f->mscale, 1.13862944f, 1e-6);
}

TEST(RopeFrequenciesTest, LongRopeHasShortAndLongTables) {
  auto c = ParseHfConfig(R"({"architectures": ["Phi3ForCausalLM"], "model_type": "phi3",
      "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
      "num_attention_heads": 2, "rope_theta": 10000.0, "max_position_embeddings": 131072,
      "original_max_position_embeddings": 4096,
      "rope_scaling": {"type": "longrope", "short_factor": [1, 1.5, 2, 4],
                       "long_factor": [2, 3, 4, 8]}})", "longrope");
  ASSERT_TRUE(c.ok()) << c.status();
  auto f = ComputeRopeFrequencies(*c);
  ASSERT_TRUE(f.ok()) << f.status();
  const float short_want[] = {1.0f, 0.0666666667f, 0.005f, 0.00025f};
  const float long_want[] = {0.5f, 0.0333333333f, 0.0025f, 0.000125f};
  ASSERT_EQ(f->long_inv_freq.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(f->inv_freq[i], short_want[i], 1e-6 * short_want[i]) << i;
    EXPECT_NEAR(f->long_inv_freq[i], long_want[i], 1e-6 * long_want[i]) << i;
  }
  EXPECT_NEAR(f->mscale, 1.19023807f, 1e-6);
  EXPECT_EQ(f->long_threshold, 4096);
  // Factors of the wrong length are refused, naming them.
  c->rope_scaling.long_factor.pop_back();
  EXPECT_NE(ComputeRopeFrequencies(*c).status().message().find("long_factor"), std::string::npos);
}

TEST(ModelConfigTest, UnsupportedVariantsAreRecorded) {
  auto falcon = ParseHfConfig(R"({"architectures": ["FalconForCausalLM"], "model_type": "falcon",
      "vocab_size": 64, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
      "alibi": true, "new_decoder_architecture": true})", "falcon");
  ASSERT_TRUE(falcon.ok()) << falcon.status();
  EXPECT_EQ(falcon->intermediate_size, 256);  // FalconConfig's 4 x hidden
  EXPECT_EQ(falcon->num_kv_heads, 1);         // multi_query by default
  EXPECT_TRUE(falcon->tie_word_embeddings);
  ASSERT_EQ(falcon->unsupported.size(), 2u);
}

}  // namespace
}  // namespace strata

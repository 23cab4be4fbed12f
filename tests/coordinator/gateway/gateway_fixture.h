// GatewayTest: a gateway (API keys "test-key" and "other-key", model "tiny") in front of an
// engine and one real worker process serving a synthetic tiny model.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "coordinator/chat/template_source.h"
#include "coordinator/engine/engine.h"
#include "coordinator/gateway/gateway.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/coordinator/cluster/local_cluster.h"
#include "tests/testing/shared_data.h"
#include "worker/model/synthetic_model.h"

namespace strata::gateway {

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto spec = SyntheticPreset("tiny");
    ASSERT_TRUE(spec.ok());
    model_ = (testing::TempDir("gateway_test") / "tiny.gguf").string();
    ASSERT_TRUE(WriteSyntheticModel(*spec, model_).ok());
    ExecutorOptions options;
    options.model = model_;
    options.max_kv_blocks = 256;
    options.worker_wait = std::chrono::seconds(30);
    auto cluster = testing::StartLocalCluster(options, 1);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    auto tok = tokenizer::LoadTokenizer(model_);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = *std::move(tok);
    auto templates = chat::LoadChatTemplates(model_);
    ASSERT_TRUE(templates.ok()) << templates.status();
    templates_ = *std::move(templates);
    auto engine = engine::Engine::Start(*cluster_->executor, tokenizer_.get(), {});
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
    auto router = engine::ReplicaRouter::Create({{cluster_->executor.get(), engine_.get()}});
    ASSERT_TRUE(router.ok()) << router.status();
    router_ = *std::move(router);
    GatewayOptions gateway;
    gateway.http.host = "127.0.0.1";
    gateway.http.port = 0;
    gateway.http.shutdown_grace = std::chrono::seconds(2);
    gateway.model_name = "tiny";
    gateway.api_keys = {"test-key", "other-key"};
    gateway.vllm_metrics = true;
    auto started = Gateway::Start(*router_, *tokenizer_, &templates_, gateway);
    ASSERT_TRUE(started.ok()) << started.status();
    gateway_ = *std::move(started);
  }

  void TearDown() override {
    if (gateway_) gateway_->Stop();
    gateway_.reset();
    engine_.reset();
    router_.reset();
  }

  std::string model_;
  std::unique_ptr<testing::LocalCluster> cluster_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  chat::ChatTemplates templates_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<engine::ReplicaRouter> router_;
  std::unique_ptr<Gateway> gateway_;
};

}  // namespace strata::gateway

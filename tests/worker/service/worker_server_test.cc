// WorkerService over real gRPC on 127.0.0.1: malformed and out-of-order requests get a status
// naming what was wrong and the server keeps serving; a valid load and steps then work.
#include <memory>
#include <string>

#include "coordinator/cluster/coordinator_server.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "proto/cluster_protocol.h"
#include "strata/v1/worker.grpc.pb.h"
#include "tests/testing/shared_data.h"
#include "worker/model/synthetic_model.h"
#include "worker/service/worker_server.h"

namespace strata {
namespace {

class WorkerServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CoordinatorServerOptions options;
    options.host = "127.0.0.1";
    auto coordinator = CoordinatorServer::Start(options);
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    coordinator_ = *std::move(coordinator);
    WorkerServerOptions worker;
    worker.bind_host = "127.0.0.1";
    worker.coordinator = coordinator_->address();
    auto server = WorkerServer::Start(worker);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::WorkerService::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
    SyntheticModelSpec spec;
    spec.name = "worker-server-test";
    model_ = (testing::TempDir("worker_server") / "model.gguf").string();
    ASSERT_TRUE(WriteSyntheticModel(spec, model_).ok());
  }

  v1::LoadRequest ValidLoad() const {
    v1::LoadRequest request;
    request.set_protocol_version(kClusterProtocolVersion);
    request.set_generation(1);
    v1::ShardAssignment* a = request.mutable_shard();
    a->set_model(model_);
    a->set_tp_size(1);
    a->set_pp_size(1);
    a->set_layer_begin(0);
    a->set_layer_end(2);
    a->set_kv_blocks(8);
    a->set_kv_block_size(16);
    return request;
  }

  // Runs a Load to completion: the final status and the last progress message.
  grpc::Status Load(const v1::LoadRequest& request, v1::LoadProgress* last = nullptr) {
    grpc::ClientContext context;
    auto reader = stub_->Load(&context, request);
    v1::LoadProgress progress;
    while (reader->Read(&progress)) {
      if (last != nullptr) *last = progress;
    }
    return reader->Finish();
  }

  std::unique_ptr<CoordinatorServer> coordinator_;
  std::unique_ptr<WorkerServer> server_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  std::string model_;
};

v1::SequenceStep Sequence(uint64_t id, std::vector<int32_t> tokens, int32_t cached,
                          std::vector<int32_t> blocks) {
  v1::SequenceStep seq;
  seq.set_seq_id(id);
  for (int32_t t : tokens) seq.add_tokens(t);
  seq.set_num_cached(cached);
  seq.set_start(cached == 0);
  for (int32_t b : blocks) seq.add_new_blocks(b);
  seq.set_sample(true);
  return seq;
}

TEST_F(WorkerServerTest, RefusesBadLoadsAndKeepsServing) {
  v1::LoadRequest wrong_version = ValidLoad();
  wrong_version.set_protocol_version(kClusterProtocolVersion + 1);
  grpc::Status status = Load(wrong_version);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("protocol version"), std::string::npos);

  v1::LoadRequest bad_rank = ValidLoad();
  bad_rank.mutable_shard()->set_tp_rank(3);
  status = Load(bad_rank);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("tp_rank 3 of tp_size 1"), std::string::npos);

  v1::LoadRequest missing = ValidLoad();
  missing.mutable_shard()->set_model("/nonexistent/model.gguf");
  status = Load(missing);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.error_message().find("/nonexistent/model.gguf"), std::string::npos);

  v1::LoadRequest too_many_layers = ValidLoad();
  too_many_layers.mutable_shard()->set_layer_end(9);
  EXPECT_FALSE(Load(too_many_layers).ok());

  v1::LoadProgress last;
  ASSERT_TRUE(Load(ValidLoad(), &last).ok());
  EXPECT_TRUE(last.ready());
  EXPECT_GT(last.weight_bytes(), 0);
  EXPECT_EQ(last.kv_blocks(), 8);
}

TEST_F(WorkerServerTest, RefusesBadStepsWithoutLosingTheStream) {
  grpc::ClientContext context;
  auto stream = stub_->Step(&context);
  v1::StepRequest request;
  v1::StepResult result;

  // Before any load.
  request.set_step_id(1);
  *request.add_seqs() = Sequence(7, {1, 2, 3}, 0, {0});
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&result));
  EXPECT_EQ(result.step_id(), 1u);
  EXPECT_EQ(result.code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));

  ASSERT_TRUE(Load(ValidLoad()).ok());
  // A token id outside the vocabulary.
  request.set_step_id(2);
  *request.mutable_seqs(0) = Sequence(7, {1, 100000}, 0, {0});
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&result));
  EXPECT_EQ(result.code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(result.error().find("step 2"), std::string::npos) << result.error();
  EXPECT_FALSE(result.has_tokens());

  // A block outside the cache.
  request.set_step_id(3);
  *request.mutable_seqs(0) = Sequence(7, {1, 2}, 0, {99});
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&result));
  EXPECT_EQ(result.code(), static_cast<int>(absl::StatusCode::kInvalidArgument)) << result.error();

  // A continuation of a sequence the worker never saw.
  request.set_step_id(4);
  *request.mutable_seqs(0) = Sequence(8, {5}, 3, {});
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&result));
  EXPECT_EQ(result.code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(result.error().find("no block table"), std::string::npos) << result.error();

  // Bad sampling parameters.
  request.set_step_id(5);
  *request.mutable_seqs(0) = Sequence(7, {1, 2}, 0, {0});
  request.mutable_seqs(0)->mutable_sampling()->set_top_p(2.0f);
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&result));
  EXPECT_EQ(result.code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(result.error().find("top_p"), std::string::npos) << result.error();

  // Valid steps on the same stream: prefill, then a decode that reuses the kept block table.
  request.set_step_id(6);
  *request.mutable_seqs(0) = Sequence(7, {1, 2, 3}, 0, {2});
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&result));
  ASSERT_EQ(result.code(), 0) << result.error();
  ASSERT_TRUE(result.has_tokens());
  ASSERT_EQ(result.tokens_size(), 1);
  request.set_step_id(7);
  *request.mutable_seqs(0) = Sequence(7, {result.tokens(0)}, 3, {});
  request.set_return_logits(true);
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&result));
  ASSERT_EQ(result.code(), 0) << result.error();
  EXPECT_EQ(result.logits_size(), 512);

  grpc::ClientContext release_context;
  v1::ReleaseRequest release;
  release.add_seq_ids(7);
  release.add_seq_ids(12345);
  v1::ReleaseReply reply;
  ASSERT_TRUE(stub_->Release(&release_context, release, &reply).ok());
  EXPECT_EQ(reply.released(), 1u);

  // Released: continuing it is refused.
  request.set_step_id(8);
  *request.mutable_seqs(0) = Sequence(7, {5}, 4, {});
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&result));
  EXPECT_EQ(result.code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace strata

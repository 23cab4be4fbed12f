// LocalExecutor: the Executor of one process that holds the whole model (TP 1, PP 1) on one
// backend. `strata generate`, `strata bench generate` and many tests run the serving engine on
// it, so offline generation and serving are one loop. Steps run synchronously inside
// Submit(); Wait() hands back their outputs.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/executor.h"
#include "worker/backend/backends.h"
#include "worker/runtime/shard_runtime.h"

namespace strata {

struct LocalExecutorOptions {
  std::string model;  // HF directory or .gguf file
  BackendOptions backend;
  std::optional<DType> weight_dtype;
  int64_t kv_tokens = 4096;  // KV cache capacity in tokens (rounded up to whole blocks)
  int kv_block_size = 16;
  int64_t max_step_tokens = 2048;
  int64_t max_logit_rows = 256;
};

class LocalExecutor final : public Executor {
 public:
  static absl::StatusOr<std::unique_ptr<LocalExecutor>> Create(const LocalExecutorOptions& options);

  const ModelConfig& config() const override { return runtime_->runner().config(); }
  int64_t kv_blocks() const override { return runtime_->runner().kv_blocks(); }
  int kv_block_size() const override {
    return static_cast<int>(runtime_->runner().kv_block_size());
  }
  int pipeline_depth() const override { return 1; }
  int64_t max_step_tokens() const override { return runtime_->runner().max_step_tokens(); }
  int64_t weight_bytes() const override { return runtime_->runner().weight_bytes(); }
  const ModelRunner& runner() const { return runtime_->runner(); }

  absl::StatusOr<Ticket> Submit(const StepInput& step) override;
  absl::StatusOr<StepOutput> Wait(Ticket ticket) override;
  absl::Status health() const override { return absl::OkStatus(); }
  absl::Status WaitReady(std::chrono::milliseconds) const override { return absl::OkStatus(); }
  std::vector<RankStatus> ranks() const override;

 private:
  explicit LocalExecutor(std::unique_ptr<ShardRuntime> runtime) : runtime_(std::move(runtime)) {}

  std::unique_ptr<ShardRuntime> runtime_;
  mutable std::mutex mu_;
  std::map<Ticket, absl::StatusOr<StepOutput>> done_;
  Ticket next_ = 1;
  int64_t steps_ = 0;
  double compute_seconds_ = 0;
};

}  // namespace strata

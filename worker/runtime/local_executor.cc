#include "worker/runtime/local_executor.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace strata {

absl::StatusOr<std::unique_ptr<LocalExecutor>> LocalExecutor::Create(
    const LocalExecutorOptions& options) {
  if (options.kv_tokens < 1 || options.kv_block_size < 1) {
    return absl::InvalidArgumentError("local executor: kv_tokens and kv_block_size must be >= 1");
  }
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, MakeBackend(options.backend));
  ModelLoadOptions load;
  load.weight_dtype = options.weight_dtype;
  load.kv_block_size = options.kv_block_size;
  load.kv_blocks = (options.kv_tokens + options.kv_block_size - 1) / options.kv_block_size;
  load.max_step_tokens = options.max_step_tokens;
  load.max_logit_rows = options.max_logit_rows;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<ModelRunner> runner,
                          LoadModel(options.model, *backend, load));
  auto runtime = std::make_unique<ShardRuntime>(std::move(backend), std::move(runner), StageRole{});
  return std::unique_ptr<LocalExecutor>(new LocalExecutor(std::move(runtime)));
}

absl::StatusOr<Executor::Ticket> LocalExecutor::Submit(const StepInput& step) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto start = std::chrono::steady_clock::now();
  StepOutput out;
  absl::Status status = runtime_->Run(step, out);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.wall_seconds = out.max_compute_seconds = seconds;
  ++steps_;
  compute_seconds_ += seconds;
  const Ticket ticket = next_++;
  if (status.ok()) {
    done_.emplace(ticket, std::move(out));
  } else {
    done_.emplace(ticket, std::move(status));
  }
  return ticket;
}

absl::StatusOr<StepOutput> LocalExecutor::Wait(Ticket ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = done_.find(ticket);
  if (it == done_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown or already collected step ", ticket));
  }
  absl::StatusOr<StepOutput> out = std::move(it->second);
  done_.erase(it);
  return out;
}

std::vector<RankStatus> LocalExecutor::ranks() const {
  std::lock_guard<std::mutex> lock(mu_);
  RankStatus r;
  r.host = "local";
  r.up = true;
  r.steps = steps_;
  r.compute_seconds = compute_seconds_;
  return {r};
}

}  // namespace strata

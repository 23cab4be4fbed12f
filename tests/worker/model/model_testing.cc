#include "tests/worker/model/model_testing.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "common/status.h"
#include "coordinator/engine/batch_generate.h"
#include "worker/backend/backends.h"
#include "worker/runtime/local_executor.h"

namespace strata::testing {

absl::StatusOr<LoadedModel> LoadForTest(const std::string& path, ModelLoadOptions options,
                                        int threads, DeviceSpec device) {
  LoadedModel m;
  STRATA_ASSIGN_OR_RETURN(m.backend, MakeBackend(BackendOptions{device, threads}));
  STRATA_ASSIGN_OR_RETURN(m.runner, LoadModel(path, *m.backend, options));
  return m;
}

absl::StatusOr<std::vector<float>> Forward(ModelRunner& runner, const StepBatch& batch,
                                           const std::vector<float>& hidden_in) {
  const ModelConfig& c = runner.config();
  STRATA_RETURN_IF_ERROR(batch.Validate(c.vocab_size, c.max_position_embeddings,
                                        runner.kv_blocks(), runner.kv_block_size()));
  Backend& backend = runner.backend();
  STRATA_ASSIGN_OR_RETURN(const StepPlan* plan, backend.PlanStep(batch));
  if (!runner.is_first_stage()) {
    const Tensor in = runner.HiddenInput(batch.num_tokens());
    if (static_cast<int64_t>(hidden_in.size()) != in.NumElements()) {
      return absl::InvalidArgumentError("hidden_in has the wrong size");
    }
    backend.CopyFromHost(hidden_in.data(), in);
  }
  STRATA_ASSIGN_OR_RETURN(Tensor out, runner.Forward(*plan));
  std::vector<float> host(out.NumElements());
  backend.CopyToHost(out, host.data());
  STRATA_RETURN_IF_ERROR(backend.Sync());
  return host;
}

StepBatch OneSequence(const ModelRunner& runner, const std::vector<int32_t>& tokens,
                      int32_t cached, bool all_logits) {
  std::vector<int32_t> blocks(runner.kv_blocks());
  std::iota(blocks.begin(), blocks.end(), 0);
  StepBatch batch;
  batch.AddSequence(tokens, cached, blocks, static_cast<int32_t>(runner.kv_block_size()),
                    all_logits);
  return batch;
}

absl::StatusOr<std::vector<int32_t>> GreedyIds(const std::string& path,
                                               const std::vector<int32_t>& prompt, int64_t n,
                                               int threads, DeviceSpec device) {
  LocalExecutorOptions options;
  options.model = path;
  options.backend.threads = threads;
  options.backend.device = device;
  options.kv_tokens = static_cast<int64_t>(prompt.size()) + n + 16;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<LocalExecutor> executor, LocalExecutor::Create(options));
  engine::BatchGenerateOptions generate;
  generate.max_new_tokens = n;
  generate.sampling.temperature = 0.0f;
  generate.stop_at_eos = false;
  STRATA_ASSIGN_OR_RETURN(engine::BatchGenerateResult result,
                          engine::GenerateBatch(*executor, {prompt}, generate));
  return result.sequences[0].tokens;
}

float MaxAbsDiff(const float* a, const float* b, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace strata::testing

// Helpers for the model tests: load a runner with its own backend (the CPU unless asked), run one step and read
// its logits on the host, and decode greedily through the engine on an in-process executor
// (the one generation loop Strata has).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/device.h"
#include "worker/backend/backend.h"
#include "worker/model/model_runner.h"

namespace strata::testing {

struct LoadedModel {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<ModelRunner> runner;
};

// `path` on a backend for `device` (the CPU by default, with `threads` threads).
absl::StatusOr<LoadedModel> LoadForTest(const std::string& path, ModelLoadOptions options = {},
                                        int threads = 2, DeviceSpec device = {});

// Runs `batch` (validated first) through `runner` and returns its output on the host: logits
// [logit rows, vocab] on the last stage, hidden states [tokens, hidden] elsewhere. A later
// stage's input is `hidden_in` (copied into its HiddenInput).
absl::StatusOr<std::vector<float>> Forward(ModelRunner& runner, const StepBatch& batch,
                                           const std::vector<float>& hidden_in = {});

// One sequence owning blocks 0.. of the runner's cache: `tokens` after `cached` earlier ones.
StepBatch OneSequence(const ModelRunner& runner, const std::vector<int32_t>& tokens,
                      int32_t cached, bool all_logits);

// Greedy ids of `prompt` (n new tokens, EOS ignored) through the engine on a LocalExecutor.
absl::StatusOr<std::vector<int32_t>> GreedyIds(const std::string& path,
                                               const std::vector<int32_t>& prompt, int64_t n,
                                               int threads = 2, DeviceSpec device = {});

float MaxAbsDiff(const float* a, const float* b, int64_t n);

}  // namespace strata::testing

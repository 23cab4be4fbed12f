// ModelRunner: runs one forward step for a contiguous range of decoder layers on a backend.
// The first stage embeds the step's tokens; the last stage applies the final norm and the
// lm_head to the rows that need logits; stages in between pass hidden states along (pipeline
// parallelism). Every tensor stays on the backend: the runtime (worker/runtime) samples from
// the logits with Backend::Sample.
//
// Models are built by family (family.h) from a Hugging Face directory or a GGUF file
// (LoadModel); the families are listed in model_registry.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "worker/backend/backend.h"

namespace strata {

class Communicator;

struct ModelLoadOptions {
  int64_t layer_begin = 0;  // this runner's layers: [layer_begin, layer_end)
  int64_t layer_end = -1;   // -1: through the last layer
  // Convert matmul and embedding weights to this dtype on load (nullopt: as stored). Rows
  // that are not a whole number of its blocks fall back to f16.
  std::optional<DType> weight_dtype;
  int64_t kv_blocks = 256;   // KV cache capacity in blocks
  int64_t kv_block_size = 16;
  // The largest step the runner accepts: its workspace is allocated for this many tokens and
  // rows of logits once, at load. Larger steps are refused.
  int64_t max_step_tokens = 2048;
  int64_t max_logit_rows = 256;
  // Tensor parallelism: this runner holds shard `tp_rank` of `tp_size` (tp_split.h) and
  // all-reduces / all-gathers over `comm`, a group of exactly those ranks whose buffers live
  // where the backend's do. `comm` is nullptr when tp_size == 1; the runner does not own it.
  // Under pipeline parallelism each stage's ranks form their own group.
  int tp_rank = 0;
  int tp_size = 1;
  bool expert_parallel = false;  // MoE: experts spread across the TP ranks, not split
  Communicator* comm = nullptr;
  // Called after each weight is loaded with the bytes loaded so far (load progress).
  std::function<void(int64_t bytes_loaded)> on_progress;
};

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;

  virtual const ModelConfig& config() const = 0;
  virtual Backend& backend() const = 0;
  virtual int64_t layer_begin() const = 0;
  virtual int64_t layer_end() const = 0;
  bool is_first_stage() const { return layer_begin() == 0; }
  bool is_last_stage() const { return layer_end() == config().num_layers; }

  virtual int64_t kv_blocks() const = 0;
  virtual int64_t kv_block_size() const = 0;
  virtual int64_t max_step_tokens() const = 0;
  virtual int64_t max_logit_rows() const = 0;
  // Bytes of weights this runner holds (mapped or converted); its TP shard only.
  virtual int64_t weight_bytes() const = 0;
  // Bytes of weights one decode step reads: everything but the embedding table, of which a
  // step reads only its tokens' rows. The roofline of memory-bound decode.
  virtual int64_t decode_weight_bytes() const = 0;

  // Where a stage after the first receives its input: [tokens, hidden_size].
  virtual Tensor HiddenInput(int64_t tokens) const = 0;
  // Runs the step planned by `plan` through this runner's layers. The first stage embeds the
  // plan's tokens; the others read HiddenInput(plan.num_tokens), filled by the caller.
  // Returns a view of the runner's workspace, valid until the next Forward:
  //   stages before the last: hidden states [num_tokens, hidden_size];
  //   the last stage: logits [num_logit_rows, vocab_size] f32, full on every TP rank.
  // The backend has completed the step's ops when it returns.
  virtual absl::StatusOr<Tensor> Forward(const StepPlan& plan) = 0;
};

// Loads the model at `path` (HF directory or .gguf) on `backend`, choosing the family by the
// config's architecture.
absl::StatusOr<std::unique_ptr<ModelRunner>> LoadModel(const std::string& path, Backend& backend,
                                                       const ModelLoadOptions& options);

// The Hugging Face architectures LoadModel knows, for messages and `--help`.
std::vector<std::string> SupportedArchitectures();

}  // namespace strata

// ModelRunner: runs one forward step for a contiguous range of decoder layers. The first
// stage embeds the step's tokens; the last stage applies the final norm and the lm_head and
// returns logits; stages in between pass hidden states along (pipeline parallelism).
//
// Models are registered by their Hugging Face `architectures` name (model_registry.cc); each
// family lives in its own file (llama.cc, ...).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/formats/weight_source.h"
#include "common/model_config.h"
#include "worker/backend/backend.h"
#include "worker/model/step_batch.h"

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
  // Tensor parallelism: this runner holds shard `tp_rank` of `tp_size` (tp_shard.h) and
  // all-reduces / all-gathers over `comm`, a group of exactly those ranks whose buffers live
  // where the backend's do. `comm` is nullptr when tp_size == 1; the runner does not own it.
  // Under pipeline parallelism each stage's ranks form their own group.
  int tp_rank = 0;
  int tp_size = 1;
  Communicator* comm = nullptr;
  // Called after each weight is loaded with the bytes loaded so far (load progress).
  std::function<void(int64_t bytes_loaded)> on_progress;
};

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;

  virtual const ModelConfig& config() const = 0;
  virtual int64_t layer_begin() const = 0;
  virtual int64_t layer_end() const = 0;
  bool is_first_stage() const { return layer_begin() == 0; }
  bool is_last_stage() const { return layer_end() == config().num_layers; }

  virtual int64_t kv_blocks() const = 0;
  virtual int64_t kv_block_size() const = 0;
  // Bytes of weights this runner holds (mapped or converted); its TP shard only.
  virtual int64_t weight_bytes() const = 0;
  // Bytes of weights one decode step reads: everything but the embedding table, of which a
  // step reads only its tokens' rows. The roofline of memory-bound decode.
  virtual int64_t decode_weight_bytes() const = 0;

  // Runs `batch` through this runner's layers.
  //   hidden_in: [num_tokens, hidden_size], ignored by the first stage.
  //   out: last stage: logits [batch.logit_rows.size(), vocab_size], full and identical on
  //        every TP rank;
  //        other stages: hidden states [num_tokens, hidden_size].
  virtual absl::Status Forward(const StepBatch& batch, absl::Span<const float> hidden_in,
                               std::vector<float>& out) = 0;
};

// Loads the model at `path` (HF directory or .gguf) on `backend`, choosing the implementation
// by the config's architecture.
absl::StatusOr<std::unique_ptr<ModelRunner>> LoadModel(const std::string& path, Backend& backend,
                                                       const ModelLoadOptions& options);

// The architectures LoadModel knows, for messages and `--help`.
std::vector<std::string> SupportedArchitectures();

}  // namespace strata

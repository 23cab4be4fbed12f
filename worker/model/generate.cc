#include "worker/model/generate.h"

#include <algorithm>
#include <chrono>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace strata {

absl::StatusOr<GenerateResult> Generate(ModelRunner& model, absl::Span<const int32_t> prompt,
                                        const GenerateOptions& options) {
  if (!model.is_first_stage() || !model.is_last_stage()) {
    return absl::FailedPreconditionError("Generate needs a runner that holds every layer");
  }
  if (prompt.empty()) return absl::InvalidArgumentError("the prompt is empty");
  STRATA_RETURN_IF_ERROR(options.sampling.Validate());
  const ModelConfig& config = model.config();
  const int64_t total = static_cast<int64_t>(prompt.size()) + options.max_new_tokens;
  const int64_t capacity = std::min(config.max_position_embeddings,
                                    model.kv_blocks() * model.kv_block_size());
  if (total > capacity) {
    return absl::OutOfRangeError(absl::StrCat("prompt (", prompt.size(), " tokens) plus ",
                                              options.max_new_tokens,
                                              " new tokens exceeds the context of ", capacity));
  }
  const int32_t block_size = static_cast<int32_t>(model.kv_block_size());
  std::vector<int32_t> blocks((total + block_size - 1) / block_size);
  std::iota(blocks.begin(), blocks.end(), 0);

  GenerateResult result;
  std::vector<float> logits, scratch;
  std::vector<int32_t> next = {prompt.begin(), prompt.end()};
  int32_t cached = 0;
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto first_token_time = start;
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    StepBatch batch;
    batch.AddSequence(next, cached, blocks, block_size, /*all_logits=*/false);
    STRATA_RETURN_IF_ERROR(model.Forward(batch, {}, logits));
    cached += static_cast<int32_t>(next.size());
    const int32_t token = SampleToken(logits, options.sampling, static_cast<uint32_t>(cached),
                                      scratch);
    if (i == 0) first_token_time = Clock::now();
    result.tokens.push_back(token);
    const auto& eos = config.eos_token_ids;
    const bool is_eos = std::find(eos.begin(), eos.end(), token) != eos.end();
    if (options.on_token && !options.on_token(token)) break;
    if (options.stop_at_eos && is_eos) {
      result.stopped_at_eos = true;
      break;
    }
    next = {token};
  }
  const auto end = Clock::now();
  result.prefill_seconds = std::chrono::duration<double>(first_token_time - start).count();
  result.decode_seconds = std::chrono::duration<double>(end - first_token_time).count();
  return result;
}

}  // namespace strata

#include "coordinator/engine/batch_generate.h"

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace strata::engine {

absl::StatusOr<BatchGenerateResult> GenerateBatch(Executor& executor,
                                                  const std::vector<std::vector<int32_t>>& prompts,
                                                  const BatchGenerateOptions& options) {
  using Clock = std::chrono::steady_clock;
  if (prompts.empty()) return absl::InvalidArgumentError("no prompts");
  BatchGenerateResult result;
  result.sequences.resize(prompts.size());
  std::mutex mu;
  std::condition_variable done_cv;
  size_t done = 0;
  absl::Status error;
  std::vector<Clock::time_point> first_token(prompts.size());
  std::vector<std::vector<Clock::time_point>> token_times(prompts.size());

  EngineOptions engine_options = options.engine;
  auto user_on_step = engine_options.on_step;
  engine_options.on_step = [&](const StepTiming& t) {
    result.steps.push_back(t);  // engine thread only
    if (user_on_step) user_on_step(t);
  };
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine,
                          Engine::Start(executor, nullptr, engine_options));
  const auto start = Clock::now();
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest request;
    request.prompt = prompts[i];
    request.sampling = options.sampling;
    request.seed = options.sampling.seed;
    request.max_tokens = options.max_new_tokens;
    request.ignore_eos = !options.stop_at_eos;
    request.return_logits = options.return_logits;
    auto added = engine->Add(std::move(request), [&, i](const SampleOutput& e) {
      bool keep = true;
      std::lock_guard<std::mutex> lock(mu);
      BatchSequenceOutput& out = result.sequences[i];
      for (int32_t token : e.token_ids) {
        token_times[i].push_back(Clock::now());
        out.tokens.push_back(token);
        if (options.on_token && !options.on_token(i, token)) keep = false;
      }
      if (!e.logits.empty()) out.logits.push_back(e.logits);
      if (e.finish != FinishReason::kNone) {
        out.finish = e.finish;
        if (e.finish == FinishReason::kError && error.ok()) error = e.error;
        ++done;
        done_cv.notify_all();
      }
      return keep;
    });
    if (!added.ok()) {
      return absl::Status(added.status().code(),
                          absl::StrCat("prompt ", i, ": ", added.status().message()));
    }
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    done_cv.wait(lock, [&] { return done == prompts.size(); });
  }
  engine.reset();  // joins the engine thread: no callback runs after this
  const auto end = Clock::now();
  STRATA_RETURN_IF_ERROR(error);
  Clock::time_point prefilled = start;
  for (const auto& times : token_times) {
    if (!times.empty()) prefilled = std::max(prefilled, times.front());
  }
  for (const auto& times : token_times) {
    for (const auto& t : times) result.decode_tokens += t > prefilled ? 1 : 0;
  }
  result.seconds = std::chrono::duration<double>(end - start).count();
  result.first_token_seconds = std::chrono::duration<double>(prefilled - start).count();
  result.decode_seconds = std::chrono::duration<double>(end - prefilled).count();
  return result;
}

}  // namespace strata::engine

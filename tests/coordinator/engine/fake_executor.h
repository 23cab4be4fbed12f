// A scripted executor for engine tests: no model and no processes, so scheduling, chunked
// prefill, cancellation, failure recovery and replica failover are tested in milliseconds. The
// fake "model" picks each next token from the sequence's last token and position alone, so a
// request's tokens are known in advance whatever it is batched with (and on whichever replica).
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/engine/engine.h"
#include "gtest/gtest.h"

namespace strata::engine::testing {

inline constexpr int32_t kVocab = 64;
inline constexpr int32_t kEos = 2;
inline constexpr int32_t kOverflow = 1;  // the fake model's logits after this token are NaN
inline constexpr int32_t kRefused = 0;   // the fake workers refuse a step holding this token

inline int32_t NextToken(int32_t last, int64_t position) {
  return 3 + static_cast<int32_t>((last * 7 + position * 3) % (kVocab - 3));
}

// What the fake model produces for `prompt`: `n` tokens, stopping after EOS unless ignored.
inline std::vector<int32_t> Expected(const std::vector<int32_t>& prompt, int n) {
  std::vector<int32_t> out;
  int32_t last = prompt.back();
  for (int64_t pos = static_cast<int64_t>(prompt.size()); static_cast<int>(out.size()) < n; ++pos) {
    last = NextToken(last, pos);
    out.push_back(last);
  }
  return out;
}

class FakeExecutor final : public Executor {
 public:
  FakeExecutor() {
    config_.architecture = "Fake";
    config_.vocab_size = kVocab;
    config_.max_position_embeddings = 4096;
    config_.eos_token_ids = {kEos};
  }

  const ModelConfig& config() const override { return config_; }
  int64_t kv_blocks() const override { return 64; }
  int kv_block_size() const override { return 16; }
  int pipeline_depth() const override { return 1; }
  int64_t max_step_tokens() const override { return 2048; }
  int64_t weight_bytes() const override { return 0; }

  absl::StatusOr<Ticket> Submit(const StepInput& step) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++submitting_;
    held_cv_.notify_all();
    held_cv_.wait(lock, [&] { return !held_; });
    --submitting_;
    const Ticket ticket = next_++;
    if (die_after_ > 0 && --die_after_ == 0) {  // DieAfterSteps: this step fails, for good
      fail_steps_ = 1;
      recovers_ = false;
    }
    if (fail_steps_ > 0 || !ready_) {  // a rank that died stays dead until WaitReady revives it
      if (fail_steps_ > 0) --fail_steps_;
      ready_ = false;
      results_.emplace(ticket, absl::UnavailableError("fake: rank 0 died"));
      return ticket;
    }
    for (const SequenceStepInput& s : step.seqs) {
      if (std::find(s.tokens.begin(), s.tokens.end(), kRefused) != s.tokens.end()) {
        results_.emplace(ticket, absl::InvalidArgumentError(absl::StrCat(
                                     "fake: sequence ", s.seq_id, " holds token 0")));
        return ticket;
      }
    }
    StepOutput out;
    int64_t tokens = 0;
    for (const SequenceStepInput& s : step.seqs) {
      tokens += static_cast<int64_t>(s.tokens.size());
      if (s.sample) {
        out.tokens.push_back(s.tokens.back() == kOverflow
                                 ? kNonFiniteLogits
                                 : NextToken(s.tokens.back(), s.num_cached +
                                                                  static_cast<int64_t>(s.tokens.size())));
        out.logprobs.emplace_back();
      }
    }
    max_tokens_seen_ = std::max(max_tokens_seen_, tokens);
    ++steps_;
    results_.emplace(ticket, std::move(out));
    return ticket;
  }
  absl::StatusOr<StepOutput> Wait(Ticket ticket) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = results_.find(ticket);
    if (it == results_.end()) return absl::InvalidArgumentError("unknown ticket");
    absl::StatusOr<StepOutput> out = std::move(it->second);
    results_.erase(it);
    return out;
  }
  absl::Status health() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return ready_ ? absl::OkStatus() : absl::UnavailableError("fake: down");
  }
  absl::Status WaitReady(std::chrono::milliseconds timeout) const override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (recovers_) ready_ = true;
      if (ready_) return absl::OkStatus();
    }
    std::this_thread::sleep_for(timeout);  // as a real cluster that stays down
    return absl::DeadlineExceededError("fake: stays down");
  }
  std::vector<RankStatus> ranks() const override { return {}; }

  // While held, a step submitted waits (the engine thread with it); WaitUntilHeld returns once
  // one does.
  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = true;
  }
  bool WaitUntilHeld() {
    std::unique_lock<std::mutex> lock(mu_);
    return held_cv_.wait_for(lock, std::chrono::seconds(10), [&] { return submitting_ > 0; });
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_ = false;
    }
    held_cv_.notify_all();
  }

  void FailSteps(int n, bool recovers) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_steps_ = n;
    recovers_ = recovers;
  }
  // The `steps`-th step from now fails and the executor stays down.
  void DieAfterSteps(int steps) {
    std::lock_guard<std::mutex> lock(mu_);
    die_after_ = steps;
  }
  int64_t max_tokens_seen() const {
    std::lock_guard<std::mutex> lock(mu_);
    return max_tokens_seen_;
  }

 private:
  ModelConfig config_;
  mutable std::mutex mu_;
  std::condition_variable held_cv_;
  bool held_ = false;
  int submitting_ = 0;
  std::map<Ticket, absl::StatusOr<StepOutput>> results_;
  Ticket next_ = 1;
  int fail_steps_ = 0;
  int die_after_ = 0;
  bool recovers_ = true;
  mutable bool ready_ = true;
  int64_t steps_ = 0;
  int64_t max_tokens_seen_ = 0;
};

// Events of every request until each has finished.
class Events {
 public:
  OutputCallback Callback(int cancel_after = -1) {
    return [this, cancel_after](const SampleOutput& e) {
      std::lock_guard<std::mutex> lock(mu_);
      Result& r = results_[e.request_id];
      r.tokens.insert(r.tokens.end(), e.token_ids.begin(), e.token_ids.end());
      if (e.finish != FinishReason::kNone) {
        r.finish = e.finish;
        r.error = e.error;
        ++finished_;
        cv_.notify_all();
      }
      return cancel_after < 0 || static_cast<int>(r.tokens.size()) < cancel_after;
    };
  }
  void WaitFor(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(20), [&] { return finished_ >= n; }));
  }
  struct Result {
    std::vector<int32_t> tokens;
    FinishReason finish = FinishReason::kNone;
    absl::Status error;
  };
  Result Get(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    return results_[id];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Result> results_;
  int finished_ = 0;
};

inline GenerationRequest Request(int32_t first, int prompt_len, int max_tokens) {
  GenerationRequest r;
  for (int i = 0; i < prompt_len; ++i) r.prompt.push_back(3 + (first + i) % 50);
  r.sampling.temperature = 0.0f;
  r.max_tokens = max_tokens;
  r.ignore_eos = true;
  return r;
}

}  // namespace strata::engine::testing

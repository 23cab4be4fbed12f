// The serving engine end to end, through real worker processes on 127.0.0.1: many concurrent
// requests of mixed lengths must get exactly the tokens each gets alone in this process (the
// engine on an in-process LocalExecutor, one request at a time) — greedy and seeded sampling, under TP=1,
// TP=2 and PP=2, and with a KV budget small enough to force preemption. Also: prefix-cache hits
// that skip computation, stop strings and stop ids, n > 1 samples, logprobs, logit bias,
// penalties, cancellation, and every block coming back.
#include <signal.h>

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/engine/engine.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/coordinator/cluster/local_cluster.h"
#include "tests/testing/shared_data.h"
#include "coordinator/engine/batch_generate.h"
#include "worker/model/synthetic_model.h"
#include "worker/runtime/local_executor.h"
#include "worker/sampling/sampler.h"

namespace strata::engine {
namespace {

struct Case {
  std::vector<int32_t> prompt;
  int64_t max_tokens = 1;
};

const std::string& TinyModel() {
  static const std::string path = [] {
    auto spec = SyntheticPreset("tiny");
    EXPECT_TRUE(spec.ok());
    const std::string p = (testing::TempDir("engine_test") / "tiny.gguf").string();
    EXPECT_TRUE(WriteSyntheticModel(*spec, p).ok());
    return p;
  }();
  return path;
}

std::vector<Case> MixedCases(int count, int max_prompt, int max_new, uint32_t seed) {
  std::mt19937 random(seed);
  std::vector<Case> cases(count);
  for (Case& c : cases) {
    c.prompt.resize(1 + random() % max_prompt);
    for (int32_t& t : c.prompt) t = 3 + static_cast<int32_t>(random() % 370);
    c.max_tokens = 1 + random() % max_new;
  }
  return cases;
}

// The tiny model in this process.
absl::StatusOr<std::unique_ptr<LocalExecutor>> TinyLocal() {
  LocalExecutorOptions local;
  local.model = TinyModel();
  local.backend.threads = 1;
  local.kv_tokens = 256;
  return LocalExecutor::Create(local);
}

// Each case alone, in this process: the engine on a LocalExecutor, one request at a time.
std::vector<std::vector<int32_t>> Alone(const std::vector<Case>& cases, bool seeded) {
  auto executor = TinyLocal();
  EXPECT_TRUE(executor.ok()) << executor.status();
  std::vector<std::vector<int32_t>> out;
  for (size_t i = 0; i < cases.size(); ++i) {
    BatchGenerateOptions options;
    options.max_new_tokens = cases[i].max_tokens;
    options.stop_at_eos = false;
    options.sampling.temperature = seeded ? 0.8f : 0.0f;
    options.sampling.top_p = seeded ? 0.9f : 1.0f;
    options.sampling.seed = 1000 + i;
    auto r = GenerateBatch(**executor, {cases[i].prompt}, options);
    EXPECT_TRUE(r.ok()) << r.status();
    out.push_back(r.ok() ? r->sequences[0].tokens : std::vector<int32_t>{});
  }
  return out;
}

// A reference loop without the engine: one sequence, one step per token, straight through an
// in-process executor. Returns the sampled ids.
// `choose`, when given, picks each next token from the step's raw logits instead.
std::vector<int32_t> StepLoop(
    const std::vector<int32_t>& prompt, int n, const SamplingParams& sampling,
    const std::function<int32_t(std::vector<float>&)>& choose = nullptr) {
  auto executor = TinyLocal();
  EXPECT_TRUE(executor.ok()) << executor.status();
  if (!executor.ok()) return {};
  std::vector<int32_t> out, next = prompt;
  int32_t cached = 0;
  for (int i = 0; i < n; ++i) {
    StepInput step;
    step.return_logits = choose != nullptr;
    SequenceStepInput seq;
    seq.seq_id = 1;
    seq.tokens = next;
    seq.num_cached = cached;
    seq.start = i == 0;
    if (seq.start) seq.new_blocks = {0, 1, 2, 3};
    seq.num_prompt_tokens = static_cast<int32_t>(prompt.size());
    seq.sampling = sampling;
    step.seqs.push_back(seq);
    auto result = (*executor)->Run(step);
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return out;
    cached += static_cast<int32_t>(next.size());
    out.push_back(choose ? choose(result->logits) : result->tokens[0]);
    next = {out.back()};
  }
  return out;
}

// Collects events per request until every request has finished.
class Collector {
 public:
  OutputCallback Callback() {
    return [this](const SampleOutput& e) {
      std::lock_guard<std::mutex> lock(mu_);
      Result& r = results_[{e.request_id, e.index}];
      r.tokens.insert(r.tokens.end(), e.token_ids.begin(), e.token_ids.end());
      r.logprobs.insert(r.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
      r.text += e.text;
      if (e.prompt_tokens > 0) r.cached_prompt_tokens = e.cached_prompt_tokens;
      if (e.finish != FinishReason::kNone) {
        r.finish = e.finish;
        r.stop = e.stop;
        ++finished_;
        done_.notify_all();
      }
      return !cancel_even_after_two_ || r.tokens.size() < 2 || e.request_id % 2 == 1;
    };
  }
  void CancelEvenRequestsAfterTwoTokens() { cancel_even_after_two_ = true; }
  void WaitFor(int count) {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(done_.wait_for(lock, std::chrono::seconds(120), [&] { return finished_ >= count; }))
        << finished_ << " of " << count << " finished";
  }
  struct Result {
    std::vector<int32_t> tokens;
    std::vector<TokenLogprobs> logprobs;
    std::string text;
    FinishReason finish = FinishReason::kNone;
    std::string stop;
    int64_t cached_prompt_tokens = -1;
  };
  Result Get(uint64_t id, int32_t index = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    return results_[{id, index}];
  }

 private:
  std::mutex mu_;
  std::condition_variable done_;
  std::map<std::pair<uint64_t, int32_t>, Result> results_;
  int finished_ = 0;
  bool cancel_even_after_two_ = false;
};

struct Served {
  std::unique_ptr<testing::LocalCluster> cluster;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  std::unique_ptr<Engine> engine;
  ~Served() { engine.reset(); }
};

std::unique_ptr<Served> Serve(int tp, int pp, int64_t kv_blocks = 256,
                              SchedulerOptions scheduler = {}, bool caching = true) {
  auto served = std::make_unique<Served>();
  ExecutorOptions options;
  options.model = TinyModel();
  options.tp = tp;
  options.pp = pp;
  options.max_kv_blocks = kv_blocks;
  options.min_kv_tokens = 16;
  options.worker_wait = std::chrono::seconds(30);
  auto cluster = testing::StartLocalCluster(options, tp * pp);
  EXPECT_TRUE(cluster.ok()) << cluster.status();
  if (!cluster.ok()) return nullptr;
  served->cluster = *std::move(cluster);
  auto tok = tokenizer::LoadTokenizer(TinyModel());
  EXPECT_TRUE(tok.ok()) << tok.status();
  served->tokenizer = *std::move(tok);
  EngineOptions engine_options;
  engine_options.scheduler = scheduler;
  engine_options.prefix_caching = caching;
  auto engine = Engine::Start(*served->cluster->executor, served->tokenizer.get(), engine_options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  if (!engine.ok()) return nullptr;
  served->engine = *std::move(engine);
  return served;
}

GenerationRequest Request(const Case& c, bool seeded, uint64_t seed) {
  GenerationRequest r;
  r.prompt = c.prompt;
  r.max_tokens = c.max_tokens;
  r.ignore_eos = true;
  r.sampling.temperature = seeded ? 0.8f : 0.0f;
  r.sampling.top_p = seeded ? 0.9f : 1.0f;
  r.seed = seed;
  return r;
}

// Submits every case at once and checks each against its run alone.
void ExpectMatchesAlone(Engine& engine, const std::vector<Case>& cases, bool seeded) {
  const auto alone = Alone(cases, seeded);
  Collector collector;
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < cases.size(); ++i) {
    auto id = engine.Add(Request(cases[i], seeded, 1000 + i), collector.Callback());
    ASSERT_TRUE(id.ok()) << id.status();
    ids.push_back(*id);
  }
  collector.WaitFor(static_cast<int>(cases.size()));
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto r = collector.Get(ids[i]);
    EXPECT_EQ(r.tokens, alone[i]) << "request " << i << " (prompt " << cases[i].prompt.size()
                                  << " tokens, " << cases[i].max_tokens << " new)";
    EXPECT_EQ(r.finish, FinishReason::kLength);
  }
  const EngineStats stats = engine.stats();
  EXPECT_EQ(stats.running, 0);
  EXPECT_EQ(stats.waiting, 0);
  EXPECT_EQ(stats.kv_blocks_free, stats.kv_blocks);
}

TEST(EngineTest, SixtyFourConcurrentRequestsGetWhatEachGetsAlone) {
  auto served = Serve(1, 1, 256, {.max_batched_tokens = 256, .max_seqs = 64});
  ASSERT_NE(served, nullptr);
  const auto cases = MixedCases(64, 70, 20, 7);
  ExpectMatchesAlone(*served->engine, cases, /*seeded=*/false);
  ExpectMatchesAlone(*served->engine, cases, /*seeded=*/true);
  EXPECT_GT(served->engine->stats().steps, 0);
}

TEST(EngineTest, SameUnderTensorAndPipelineParallelism) {
  const auto cases = MixedCases(64, 70, 12, 11);
  for (auto [tp, pp] : {std::pair{2, 1}, std::pair{1, 2}}) {
    SCOPED_TRACE(absl::StrCat("TP", tp, " PP", pp));
    auto served = Serve(tp, pp, 256, {.max_batched_tokens = 128, .max_seqs = 32});
    ASSERT_NE(served, nullptr);
    ExpectMatchesAlone(*served->engine, cases, false);
    ExpectMatchesAlone(*served->engine, cases, true);
  }
}

TEST(EngineTest, PreemptionKeepsOutputsExact) {
  // 40 blocks of 16 tokens; 64 requests of up to 70 + 30 tokens (up to 7 blocks each).
  auto served = Serve(1, 1, 40, {.max_batched_tokens = 256, .max_seqs = 64});
  ASSERT_NE(served, nullptr);
  const auto cases = MixedCases(64, 70, 30, 13);
  ExpectMatchesAlone(*served->engine, cases, false);
  ExpectMatchesAlone(*served->engine, cases, true);
  EXPECT_GT(served->engine->stats().preemptions, 0);
}

TEST(EngineTest, PrefixCacheSkipsTheSharedPrefix) {
  auto served = Serve(1, 1);
  ASSERT_NE(served, nullptr);
  Engine& engine = *served->engine;
  Case first = MixedCases(1, 1, 1, 3)[0];
  first.prompt.resize(64, 42);  // 64 tokens: 4 full blocks
  first.max_tokens = 4;
  Case second = first;
  second.prompt.insert(second.prompt.end(), {5, 6, 7, 8, 9});
  const auto alone = Alone({first, second}, false);

  Collector collector;
  auto a = engine.Add(Request(first, false, 1), collector.Callback());
  ASSERT_TRUE(a.ok());
  collector.WaitFor(1);
  const int64_t computed_before = engine.stats().computed_tokens;
  auto b = engine.Add(Request(second, false, 1), collector.Callback());
  ASSERT_TRUE(b.ok());
  collector.WaitFor(2);
  EXPECT_EQ(collector.Get(*a).cached_prompt_tokens, 0);
  EXPECT_EQ(collector.Get(*b).cached_prompt_tokens, 64);
  // The second request computed its 5 new prompt tokens and 3 fed-back tokens, not 69 + 3.
  EXPECT_EQ(engine.stats().computed_tokens - computed_before, 5 + 3);
  EXPECT_EQ(collector.Get(*a).tokens, alone[0]);
  EXPECT_EQ(collector.Get(*b).tokens, alone[1]);
  EXPECT_GE(engine.stats().prefix_hit_blocks, 4);
}

TEST(EngineTest, BlocksComeBackAfterFinishedAndCancelledRequests) {
  auto served = Serve(1, 1, 64, {.max_batched_tokens = 64, .max_seqs = 16});
  ASSERT_NE(served, nullptr);
  Engine& engine = *served->engine;
  Collector collector;
  collector.CancelEvenRequestsAfterTwoTokens();  // the callback returns false: client gone
  auto cases = MixedCases(20, 40, 30, 17);
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < cases.size(); ++i) {
    cases[i].max_tokens = 30;
    auto id = engine.Add(Request(cases[i], true, i), collector.Callback());
    ASSERT_TRUE(id.ok());
    ids.push_back(*id);
  }
  // Cancel two more from outside while they run.
  engine.Cancel(ids[1]);
  engine.Cancel(ids[3]);
  collector.WaitFor(20);
  int cancelled = 0;
  for (uint64_t id : ids) cancelled += collector.Get(id).finish == FinishReason::kCancelled;
  EXPECT_GE(cancelled, 10);
  const EngineStats stats = engine.stats();
  EXPECT_EQ(stats.running + stats.waiting, 0);
  EXPECT_EQ(stats.kv_blocks_free, stats.kv_blocks);
}

TEST(EngineTest, StopStringsAndStopTokenIds) {
  auto served = Serve(1, 1);
  ASSERT_NE(served, nullptr);
  Engine& engine = *served->engine;
  Case c = MixedCases(1, 10, 1, 23)[0];
  c.max_tokens = 24;
  Collector plain;
  auto id = engine.Add(Request(c, false, 0), plain.Callback());
  ASSERT_TRUE(id.ok());
  plain.WaitFor(1);
  const auto full = plain.Get(*id);
  ASSERT_EQ(full.tokens.size(), 24u);
  ASSERT_GE(full.text.size(), 6u);

  // A stop string from the middle of that text: the output ends right before it.
  const std::string stop = full.text.substr(full.text.size() / 2, 3);
  GenerationRequest with_stop = Request(c, false, 0);
  with_stop.stop = {stop, "\x01never"};
  Collector stopped;
  id = engine.Add(with_stop, stopped.Callback());
  ASSERT_TRUE(id.ok());
  stopped.WaitFor(1);
  const auto s = stopped.Get(*id);
  EXPECT_EQ(s.finish, FinishReason::kStop);
  EXPECT_EQ(s.stop, stop);
  EXPECT_EQ(s.text, full.text.substr(0, full.text.find(stop)));

  // A stop token id: generation ends at it.
  GenerationRequest with_id = Request(c, false, 0);
  with_id.stop_token_ids = {full.tokens[5]};
  Collector by_id;
  id = engine.Add(with_id, by_id.Callback());
  ASSERT_TRUE(id.ok());
  by_id.WaitFor(1);
  const auto t = by_id.Get(*id);
  EXPECT_EQ(t.finish, FinishReason::kStop);
  const size_t first = std::find(full.tokens.begin(), full.tokens.end(), full.tokens[5]) -
                       full.tokens.begin();
  EXPECT_EQ(t.tokens, std::vector<int32_t>(full.tokens.begin(), full.tokens.begin() + first + 1));
}

TEST(EngineTest, ParallelSamplesShareThePromptAndMatchTheirStreams) {
  auto served = Serve(1, 1);
  ASSERT_NE(served, nullptr);
  Case c = MixedCases(1, 1, 1, 29)[0];
  c.prompt.resize(40, 77);  // two full blocks to share
  c.max_tokens = 10;
  GenerationRequest r = Request(c, true, 99);
  r.sampling.temperature = 1.0f;
  r.sampling.top_p = 1.0f;
  r.n = 4;
  Collector collector;
  auto id = served->engine->Add(r, collector.Callback());
  ASSERT_TRUE(id.ok());
  collector.WaitFor(4);

  for (int i = 0; i < 4; ++i) {
    SamplingParams sampling;
    sampling.temperature = 1.0f;
    sampling.seed = 99;
    sampling.stream = static_cast<uint32_t>(i);
    const std::vector<int32_t> alone = StepLoop(c.prompt, 10, sampling);
    const auto sample = collector.Get(*id, i);
    EXPECT_EQ(sample.tokens, alone) << "sample " << i;
    if (i > 0) {
      EXPECT_EQ(sample.cached_prompt_tokens, 32) << "sample " << i;
    }
  }
}

TEST(EngineTest, LogprobsLogitBiasAndPenalties) {
  auto served = Serve(1, 1);
  ASSERT_NE(served, nullptr);
  Engine& engine = *served->engine;
  Case c = MixedCases(1, 12, 1, 31)[0];
  c.max_tokens = 8;

  // Greedy with 3 alternatives: the chosen token is the most likely one.
  GenerationRequest lp = Request(c, false, 0);
  lp.sampling.logprobs = 3;
  Collector a;
  auto id = engine.Add(lp, a.Callback());
  ASSERT_TRUE(id.ok());
  a.WaitFor(1);
  const auto with_lp = a.Get(*id);
  ASSERT_EQ(with_lp.logprobs.size(), with_lp.tokens.size());
  for (size_t i = 0; i < with_lp.tokens.size(); ++i) {
    const TokenLogprobs& l = with_lp.logprobs[i];
    ASSERT_EQ(l.top_ids.size(), 3u);
    EXPECT_EQ(l.top_ids[0], with_lp.tokens[i]);
    EXPECT_FLOAT_EQ(l.top_logprobs[0], l.logprob);
    EXPECT_LE(l.logprob, 0.0f);
    EXPECT_GE(l.top_logprobs[0], l.top_logprobs[1]);
  }

  // A +100 bias makes one token win every step.
  GenerationRequest biased = Request(c, false, 0);
  biased.sampling.logit_bias = {{123, 100.0f}};
  Collector b;
  id = engine.Add(biased, b.Callback());
  ASSERT_TRUE(id.ok());
  b.WaitFor(1);
  EXPECT_EQ(b.Get(*id).tokens, std::vector<int32_t>(8, 123));

  // Penalties against a reference loop in this process (the same processors, applied to one
  // sequence step by step): checks what the workers keep of each sequence's tokens.
  GenerationRequest penalized = Request(c, false, 0);
  penalized.sampling.repetition_penalty = 1.3f;
  penalized.sampling.frequency_penalty = 0.7f;
  penalized.sampling.presence_penalty = 0.5f;
  penalized.sampling.logit_bias = {{c.prompt[0], 3.0f}};
  Collector p;
  id = engine.Add(penalized, p.Callback());
  ASSERT_TRUE(id.ok());
  p.WaitFor(1);

  // The raw logits of each step, then the processors on the host.
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  TokenHistory history;
  for (int32_t t : c.prompt) history.Add(t, false);
  const std::vector<int32_t> expected =
      StepLoop(c.prompt, 8, greedy, [&](std::vector<float>& logits) {
        ApplyLogitsProcessors(absl::MakeSpan(logits), penalized.sampling, history);
        const int32_t token = Argmax(logits);
        history.Add(token, true);
        return token;
      });
  EXPECT_EQ(p.Get(*id).tokens, expected);
}

// A worker dies in the middle of a batch: the executor reloads the cluster once a replacement
// registers, the engine recomputes every running sequence, and every request still gets
// exactly the tokens it gets alone.
TEST(EngineTest, SurvivesAWorkerDyingMidBatch) {
  auto served = Serve(2, 1, 256, {.max_batched_tokens = 64, .max_seqs = 16});
  ASSERT_NE(served, nullptr);
  Engine& engine = *served->engine;
  auto cases = MixedCases(16, 40, 1, 37);
  for (Case& c : cases) c.max_tokens = 40;
  const auto alone = Alone(cases, true);
  std::mutex mu;
  std::condition_variable cv;
  int64_t tokens_seen = 0;
  Collector collector;
  auto inner = collector.Callback();
  auto counting = [&](const SampleOutput& e) {
    {
      std::lock_guard<std::mutex> lock(mu);
      tokens_seen += static_cast<int64_t>(e.token_ids.size());
    }
    cv.notify_all();
    return inner(e);
  };
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < cases.size(); ++i) {
    auto id = engine.Add(Request(cases[i], true, 1000 + i), counting);
    ASSERT_TRUE(id.ok());
    ids.push_back(*id);
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return tokens_seen >= 100; }));
  }
  served->cluster->workers[0]->Signal(1, SIGKILL);
  ASSERT_TRUE(served->cluster->SpawnWorkers(1).ok());
  collector.WaitFor(static_cast<int>(cases.size()));
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto r = collector.Get(ids[i]);
    EXPECT_EQ(r.finish, FinishReason::kLength) << "request " << i;
    EXPECT_EQ(r.tokens, alone[i]) << "request " << i;
  }
  EXPECT_GT(served->cluster->executor->generation(), 1u);
}

TEST(EngineTest, RefusesBadRequestsWithTheReason) {
  auto served = Serve(1, 1, 8);  // 128 tokens of KV
  ASSERT_NE(served, nullptr);
  Engine& engine = *served->engine;
  GenerationRequest r;
  auto status = engine.Add(r, [](const SampleOutput&) { return true; }).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  r.prompt = {1, 2, 9999};
  status = engine.Add(r, [](const SampleOutput&) { return true; }).status();
  EXPECT_NE(status.message().find("9999"), std::string::npos) << status;
  r.prompt.assign(100, 5);
  r.max_tokens = 100;
  status = engine.Add(r, [](const SampleOutput&) { return true; }).status();
  EXPECT_NE(status.message().find("maximum context length is 128"), std::string::npos) << status;
  EXPECT_NE(status.message().find("100 prompt tokens"), std::string::npos) << status;
  r.max_tokens = 4;
  r.sampling.top_p = 0;
  status = engine.Add(r, [](const SampleOutput&) { return true; }).status();
  EXPECT_NE(status.message().find("top_p"), std::string::npos) << status;
}

}  // namespace
}  // namespace strata::engine

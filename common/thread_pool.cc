#include "common/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define STRATA_CPU_RELAX() _mm_pause()
#else
#define STRATA_CPU_RELAX() ((void)0)
#endif

namespace strata {
namespace {

// How long a thread spins for the next event before it blocks. Longer than the gap between
// two decode ops, far shorter than anything a person would notice as idle CPU.
constexpr auto kSpin = std::chrono::microseconds(200);

// Spins until pred() holds or kSpin passes; returns pred(). After a short busy phase it
// yields between checks, so an oversubscribed machine still runs whoever has work.
template <class Pred>
bool SpinFor(const Pred& pred) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; ++i) {
    if (pred()) return true;
    if (i < 2048) {
      STRATA_CPU_RELAX();
      continue;
    }
    std::this_thread::yield();
    if (std::chrono::steady_clock::now() > deadline) return pred();
  }
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    // Sequentially consistent loads: with the sleepers_ counter they form the Dekker pair
    // that keeps Dispatch from missing a worker that is about to sleep.
    auto has_job = [&] { return stop_.load() || generation_.load() != seen; };
    if (!SpinFor(has_job)) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1);
      start_cv_.wait(lock, has_job);
      sleepers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    seen = generation_.load();
    (*job_)(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      if (caller_sleeping_) done_cv_.notify_one();
    }
  }
}

void ThreadPool::Dispatch(const std::function<void(int)>& fn) {
  job_ = &fn;
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);  // pairs with the waiters' predicate check
    start_cv_.notify_all();
  }
  fn(0);
  auto done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (SpinFor(done)) return;
  std::unique_lock<std::mutex> lock(mu_);
  caller_sleeping_ = true;
  done_cv_.wait(lock, done);
  caller_sleeping_ = false;
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain,
                             const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (workers_.empty() || n <= grain) {
    fn(0, n);
    return;
  }
  // About four chunks per thread balances uneven chunks without much hand-out traffic.
  const int64_t chunk = std::max(grain, (n + num_threads() * 4 - 1) / (num_threads() * 4));
  std::atomic<int64_t> next{0};
  Dispatch([&](int) {
    for (int64_t begin = next.fetch_add(chunk); begin < n; begin = next.fetch_add(chunk)) {
      fn(begin, std::min(n, begin + chunk));
    }
  });
}

void ThreadPool::RunOnAll(const std::function<void(int)>& fn) {
  if (workers_.empty()) {
    fn(0);
    return;
  }
  Dispatch(fn);
}

}  // namespace strata

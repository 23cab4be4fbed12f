// ThreadPool: a fixed set of threads that run data-parallel loops. The calling thread takes
// part in every loop, so a pool of N threads has N-1 background workers.
//
// Decode issues a few hundred short loops per token, so the hand-off is what matters: workers
// spin on an atomic job counter for a short while after each job (and the caller spins on the
// completion count) before falling back to a condition variable, so back-to-back loops never
// pay a futex wake-up while an idle pool still sleeps.
//
// Thread-safety: ParallelFor / RunOnAll may be called from one thread at a time per pool, and
// not from inside a job of the same pool.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace strata {

class ThreadPool {
 public:
  // `num_threads` <= 0 means one per hardware thread.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(begin, end) over [0, n) split into chunks of at least `grain` items, and returns
  // when all chunks are done. Chunks are handed out dynamically.
  void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // Runs fn(thread_index) once on each of the num_threads() threads.
  void RunOnAll(const std::function<void(int)>& fn);

 private:
  void WorkerLoop(int index);
  // Publishes the job in fn_ and waits until every worker has run it.
  void Dispatch(const std::function<void(int)>& fn);

  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;  // written before generation_ is bumped
  std::atomic<uint64_t> generation_{0};  // bumped once per job
  std::atomic<int> pending_{0};          // workers still running the current job
  std::atomic<bool> stop_{false};
  std::atomic<int> sleepers_{0};         // workers blocked on start_cv_
  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  bool caller_sleeping_ = false;  // guarded by mu_
};

}  // namespace strata

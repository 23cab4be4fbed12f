// ThreadPool: a fixed set of threads that run data-parallel loops. The calling thread takes
// part in every loop, so a pool of N threads has N-1 background workers.
//
// Thread-safety: ParallelFor may be called from one thread at a time per pool.
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
  void RunChunks();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  uint64_t generation_ = 0;  // guarded by mu_
  int pending_ = 0;          // workers still running the current job; guarded by mu_
  bool stop_ = false;        // guarded by mu_

  // The current job; written before generation_ is bumped.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  const std::function<void(int)>* each_fn_ = nullptr;
  int64_t n_ = 0;
  int64_t chunk_ = 1;
  std::atomic<int64_t> next_{0};
};

}  // namespace strata

// Tensor and pipeline parallelism across GPUs over NCCL: a Llama-shaped bf16 model (head dim
// 128) split over 2 (and 4) GPUs, ranks in threads of this process meeting through a
// FileStore, against the same model on one GPU: every greedy step's logits within a bf16
// tolerance (max |diff| <= 0.05 * max(1, max |logit|): the all-reduces sum in f32 and round
// once, but the split changes which partial sums are rounded to bf16), and the greedy ids equal
// where the one-GPU margin exceeds 0.1; every run is fed the one-GPU run's tokens. A pipeline
// alone (TP 1 x PP 2) must give the one-GPU logits bit for bit: the residual stream between
// layers is bf16 on one GPU too, the hand-off copies its bits, and each stage runs the same
// kernels on the same shapes (decode steps replayed from graphs on both sides). The pipeline runs through ShardRuntime, the worker's own
// hand-off code. With two or more GPUs the ranks meet over NCCL, a rank per GPU; with one GPU
// (NCCL refuses two ranks on one device) every rank runs on it and they meet through
// SameDeviceGroup below, device-memory collectives between threads queued on the ranks'
// streams as NCCL's are, so the sharded model's GPU path (its slices, comm buffers,
// vocab-parallel logits, decode steps recorded with their collectives, the pipeline hand-off)
// is checked on one GPU too. Skips without a device (label `gpu`).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "kernels/cuda/ops.h"
#include "tests/testing/shared_data.h"
#include "tests/worker/model/device_barrier.h"
#include "tests/worker/model/model_testing.h"
#include "worker/backend/backends.h"
#include "worker/comm/nccl_communicator.h"
#include "worker/comm/store.h"
#include "worker/model/synthetic_model.h"
#include "worker/runtime/shard_runtime.h"

namespace strata {
namespace {

constexpr int kSteps = 8;

int DeviceCount() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

// Ranks that are threads of this process with every buffer on one GPU: the collectives of
// communicator.h in device memory, for tests on a machine with one GPU. As a worker's NCCL
// group does, a rank queues its collectives on its backend's stream (stream()), so the model
// runs them as it runs NCCL's, recorded graphs included. Each rank copies its part into its
// slot of a shared device buffer and passes a device barrier (device_barrier.h; outside a
// recording the ranks meet on the host before queuing it); then every rank reads the slots it
// needs (an all-reduce sums them in rank order, so every rank gets the
// same bits) and passes a second barrier before any slot is written again. Send and Recv go
// through host mailboxes and wait for their copies on the rank's stream. Nothing waits past
// kTimeout: the device barriers give up (Synchronize then fails) and so do the mailboxes.
class SameDeviceGroup {
 public:
  SameDeviceGroup(int world, int64_t max_floats) : world_(world), max_(max_floats) {
    EXPECT_EQ(cudaMalloc(&slots_, world * max_floats * 4), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&counters_, world * sizeof(uint32_t)), cudaSuccess);
    EXPECT_EQ(cudaMemset(counters_, 0, world * sizeof(uint32_t)), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&timed_out_, sizeof(int)), cudaSuccess);
    EXPECT_EQ(cudaMemset(timed_out_, 0, sizeof(int)), cudaSuccess);
    for (int i = 0; i < world * world; ++i) mailboxes_.push_back(std::make_unique<Mailbox>());
    for (int i = 0; i < world * world; ++i) {
      EXPECT_EQ(cudaMalloc(&mailboxes_[i]->data, max_floats * 4), cudaSuccess);
    }
  }
  ~SameDeviceGroup() {
    cudaFree(slots_);
    cudaFree(counters_);
    cudaFree(timed_out_);
    for (auto& m : mailboxes_) cudaFree(m->data);
  }

  // Rank `rank`, queuing on `stream` (its backend's).
  absl::StatusOr<std::unique_ptr<Communicator>> Rank(int rank, void* stream) {
    return std::unique_ptr<Communicator>(
        std::make_unique<Member>(*this, rank, static_cast<cudaStream_t>(stream)));
  }

 private:
  static constexpr std::chrono::seconds kTimeout{60};

  struct Mailbox {  // rank a -> rank b
    std::mutex mu;
    std::condition_variable cv;
    bool full = false;
    float* data = nullptr;
  };

  class Member : public Communicator {
   public:
    Member(SameDeviceGroup& g, int rank, cudaStream_t stream)
        : g_(g), rank_(rank), stream_(stream) {}
    int rank() const override { return rank_; }
    int world_size() const override { return g_.world_; }
    bool device_memory() const override { return true; }
    void* stream() const override { return stream_; }

    absl::Status AllReduceSum(float* data, int64_t n) override {
      STRATA_RETURN_IF_ERROR(Publish(data, n));
      Copy(data, g_.Slot(0), n);
      for (int r = 1; r < g_.world_; ++r) {
        kernels::cuda::UpdateParams add;
        add.x = data;
        add.y = g_.Slot(r);
        add.n = n;
        STRATA_RETURN_IF_ERROR(kernels::cuda::LaunchUpdate(add, stream_));
      }
      return Pass();  // nobody overwrites a slot before every rank has read it
    }
    absl::Status AllGather(const float* in, int64_t n, float* out) override {
      STRATA_RETURN_IF_ERROR(Publish(in, n));
      for (int r = 0; r < g_.world_; ++r) Copy(out + r * n, g_.Slot(r), n);
      return Pass();
    }
    absl::Status Broadcast(float* data, int64_t n, int root) override {
      STRATA_RETURN_IF_ERROR(Publish(data, n));
      if (rank_ != root) Copy(data, g_.Slot(root), n);
      return Pass();
    }
    absl::Status Send(const float* data, int64_t n, int peer) override {
      if (n > g_.max_) return absl::InvalidArgumentError("SameDeviceGroup: message too large");
      Mailbox& m = *g_.mailboxes_[rank_ * g_.world_ + peer];
      std::unique_lock lock(m.mu);
      if (!m.cv.wait_for(lock, kTimeout, [&] { return !m.full; })) {
        return absl::DeadlineExceededError("SameDeviceGroup: send timed out");
      }
      Copy(m.data, data, n);
      STRATA_RETURN_IF_ERROR(Synchronize());
      m.full = true;
      m.cv.notify_all();
      return absl::OkStatus();
    }
    absl::Status Recv(float* data, int64_t n, int peer) override {
      if (n > g_.max_) return absl::InvalidArgumentError("SameDeviceGroup: message too large");
      Mailbox& m = *g_.mailboxes_[peer * g_.world_ + rank_];
      std::unique_lock lock(m.mu);
      if (!m.cv.wait_for(lock, kTimeout, [&] { return m.full; })) {
        return absl::DeadlineExceededError("SameDeviceGroup: recv timed out");
      }
      Copy(data, m.data, n);
      STRATA_RETURN_IF_ERROR(Synchronize());
      m.full = false;
      m.cv.notify_all();
      return absl::OkStatus();
    }
    absl::Status Barrier() override {
      STRATA_RETURN_IF_ERROR(Pass());
      return Synchronize();
    }
    // Waits for this rank's stream only (another rank's may be waiting in a barrier for this
    // one's next call), bounded by the device barriers' timeout.
    absl::Status Synchronize() override {
      cudaError_t e = cudaStreamSynchronize(stream_);
      if (error_ != cudaSuccess) e = error_;
      error_ = cudaSuccess;
      if (e != cudaSuccess) {
        return absl::InternalError(absl::StrCat("SameDeviceGroup: ", cudaGetErrorString(e)));
      }
      int timed_out = 0;
      if (cudaMemcpy(&timed_out, g_.timed_out_, sizeof(int), cudaMemcpyDeviceToHost) !=
              cudaSuccess ||
          timed_out != 0) {
        return absl::DeadlineExceededError("SameDeviceGroup: a device barrier timed out");
      }
      return absl::OkStatus();
    }

   private:
    absl::Status Publish(const float* data, int64_t n) {
      if (n > g_.max_) return absl::InvalidArgumentError("SameDeviceGroup: message too large");
      Copy(g_.Slot(rank_), data, n);
      return Pass();
    }
    void Copy(float* dst, const float* src, int64_t n) {
      if (cudaError_t e = cudaMemcpyAsync(dst, src, n * 4, cudaMemcpyDeviceToDevice, stream_);
          e != cudaSuccess) {
        error_ = e;
      }
    }
    absl::Status Pass() {
      // Queued outside a recording, a rank meets the others on the host first: every barrier
      // queued is then one every rank has reached, so it completes whatever a rank does next
      // (a cudaFree waits for the whole device, a peer's waiting barrier included).
      cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
      if (cudaStreamIsCapturing(stream_, &capture) != cudaSuccess ||
          capture == cudaStreamCaptureStatusNone) {
        STRATA_RETURN_IF_ERROR(g_.Meet());
      }
      const uint64_t timeout_ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(kTimeout).count();
      if (cudaError_t e = testing::QueueDeviceBarrier(g_.counters_, rank_, g_.world_, timeout_ns,
                                                      g_.timed_out_, stream_);
          e != cudaSuccess) {
        return absl::InternalError(absl::StrCat("SameDeviceGroup: ", cudaGetErrorString(e)));
      }
      return absl::OkStatus();
    }

    SameDeviceGroup& g_;
    int rank_;
    cudaStream_t stream_;
    cudaError_t error_ = cudaSuccess;
  };

  float* Slot(int rank) { return slots_ + rank * max_; }
  // Returns when every rank has called it (DeadlineExceeded after kTimeout).
  absl::Status Meet() {
    std::unique_lock lock(mu_);
    const int64_t generation = generation_;
    if (++arrived_ == world_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return absl::OkStatus();
    }
    if (!cv_.wait_for(lock, kTimeout, [&] { return generation_ != generation; })) {
      return absl::DeadlineExceededError("SameDeviceGroup: a rank did not reach a collective");
    }
    return absl::OkStatus();
  }

  const int world_;
  const int64_t max_;
  float* slots_ = nullptr;
  uint32_t* counters_ = nullptr;  // device barrier passes, per rank
  int* timed_out_ = nullptr;
  std::vector<std::unique_ptr<Mailbox>> mailboxes_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  int64_t generation_ = 0;
};

// A one-thread backend on GPU `device`.
BackendOptions OnGpu(int device) {
  return {.device = DeviceSpec::Of(DeviceKind::kCuda, device), .threads = 1};
}

constexpr int64_t kGroupFloats = int64_t{1} << 20;  // the largest message of these tests, and more

// Rank `rank` of an NCCL group on `device`; with a `stream` (a TP group's: its backend's, as a
// worker makes it) its calls only enqueue there, else each waits for its work.
absl::StatusOr<std::unique_ptr<Communicator>> NcclGroup(int rank, int world, int device,
                                                        const std::string& prefix,
                                                        KeyValueStore& store,
                                                        void* stream = nullptr) {
  NcclOptions nccl;
  nccl.rank = rank;
  nccl.world_size = world;
  nccl.device = device;
  nccl.stream = stream;
  nccl.wait_for_completion = stream == nullptr;
  nccl.timeout = std::chrono::seconds(60);
  nccl.store_prefix = prefix;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<NcclCommunicator> comm, NcclCommunicator::Create(nccl, store));
  return std::unique_ptr<Communicator>(std::move(comm));
}

// Decoding of `prompt` on a loaded shard, each step's full logits. Without `forced` each step
// feeds back its own argmax (greedy); with it, step i feeds forced[i] (the one-GPU run's
// tokens, so a near-tie that bf16 flips cannot send the runs down different paths).
std::vector<std::vector<float>> StepLogits(ModelRunner& runner, std::vector<int32_t> step,
                                           std::vector<int32_t>* tokens,
                                           const std::vector<int32_t>* forced) {
  std::vector<std::vector<float>> out;
  int32_t cached = 0;
  for (int i = 0; i < kSteps; ++i) {
    auto logits = testing::Forward(runner, testing::OneSequence(runner, step, cached, false));
    EXPECT_TRUE(logits.ok()) << logits.status();
    if (!logits.ok()) return out;
    cached += static_cast<int32_t>(step.size());
    const int32_t next =
        forced != nullptr
            ? (*forced)[i]
            : static_cast<int32_t>(std::max_element(logits->begin(), logits->end()) -
                                   logits->begin());
    if (tokens != nullptr) tokens->push_back(next);
    step = {next};
    out.push_back(*std::move(logits));
  }
  return out;
}

// The model both tests split: 4 layers, so a 2-stage pipeline gets 2 each.
std::string WriteModel(const std::string& name) {
  SyntheticModelSpec spec;
  spec.name = "strata-gpu-tp-random";
  spec.vocab_size = 1024;
  spec.hidden_size = 1024;
  spec.intermediate_size = 2048;
  spec.num_layers = 4;
  spec.num_heads = 8;
  spec.num_kv_heads = 4;
  spec.dtype = DType::kBF16;
  const std::string path = (testing::TempDir(name) / "model.gguf").string();
  EXPECT_TRUE(WriteSyntheticModel(spec, path).ok());
  return path;
}

// A split run's step logits against the one-GPU run's (see the header for the tolerance).
void ExpectCloseToOneGpu(const std::vector<std::vector<float>>& got,
                         const std::vector<std::vector<float>>& want, const std::string& who) {
  ASSERT_EQ(got.size(), want.size()) << who;
  for (size_t s = 0; s < want.size(); ++s) {
    const std::vector<float>& w = want[s];
    ASSERT_EQ(got[s].size(), w.size()) << who << " step " << s;
    float scale = 1.0f, first = -INFINITY, second = -INFINITY;
    for (float v : w) {
      scale = std::max(scale, std::fabs(v));
      if (v > first) {
        second = first;
        first = v;
      } else if (v > second) {
        second = v;
      }
    }
    const float diff =
        testing::MaxAbsDiff(got[s].data(), w.data(), static_cast<int64_t>(w.size()));
    EXPECT_LE(diff, 0.05f * scale) << who << " step " << s;
    if (first - second > 0.1f) {
      EXPECT_EQ(std::max_element(got[s].begin(), got[s].end()) - got[s].begin(),
                std::max_element(w.begin(), w.end()) - w.begin())
          << who << " step " << s;
    }
  }
}

TEST(CudaTensorParallelTest, SplitsMatchOneGpu) {
  const int devices = DeviceCount();
  if (devices < 1) GTEST_SKIP() << "no CUDA device";
  const std::string path = WriteModel("cuda_tp");
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378, 300, 290, 555, 901};

  ModelLoadOptions options;
  options.kv_blocks = 8;
  auto one = testing::LoadForTest(path, options, 1, DeviceSpec::Of(DeviceKind::kCuda, 0));
  ASSERT_TRUE(one.ok()) << one.status();
  std::vector<int32_t> chain;
  const std::vector<std::vector<float>> want = StepLogits(*one->runner, prompt, &chain, nullptr);
  ASSERT_EQ(want.size(), static_cast<size_t>(kSteps));

  for (int world : {2, 4}) {
    const bool nccl = devices >= world;  // else every rank on GPU 0 (one GPU only)
    if (!nccl && devices > 1) continue;
    SCOPED_TRACE(absl::StrCat("TP ", world, nccl ? " over NCCL" : " on one GPU"));
    FileStore store(testing::TempDir("cuda_tp_store_" + std::to_string(world)));
    SameDeviceGroup same_device(world, kGroupFloats);
    std::vector<std::vector<std::vector<float>>> got(world);
    std::vector<std::thread> ranks;
    for (int r = 0; r < world; ++r) {
      ranks.emplace_back([&, r] {
        const int device = nccl ? r : 0;
        // Declared first, so it outlives the backend, whose graphs hold NCCL's plans.
        absl::StatusOr<std::unique_ptr<Communicator>> comm;
        auto backend = MakeBackend(OnGpu(device));
        ASSERT_TRUE(backend.ok()) << backend.status();
        comm = nccl ? NcclGroup(r, world, device, "nccl", store, (*backend)->stream())
                    : same_device.Rank(r, (*backend)->stream());
        ASSERT_TRUE(comm.ok()) << comm.status();
        ModelLoadOptions shard = options;
        shard.tp_rank = r;
        shard.tp_size = world;
        shard.comm = comm->get();
        auto runner = LoadModel(path, **backend, shard);
        ASSERT_TRUE(runner.ok()) << runner.status();
        // Collectives queued on the backend's stream: decode steps are recorded as graphs,
        // all-reduces inside, as a model alone on one GPU records them.
        EXPECT_FALSE((*backend)->GraphBatches().empty());
        got[r] = StepLogits(**runner, prompt, nullptr, &chain);
      });
    }
    for (std::thread& t : ranks) t.join();
    for (int r = 0; r < world; ++r) ExpectCloseToOneGpu(got[r], want, "rank " + std::to_string(r));
  }
}

// Greedy steps through one worker's ShardRuntime: the prompt, then each forced token; the last
// stage's logits per step (empty on other stages).
std::vector<std::vector<float>> RunSteps(ShardRuntime& runtime, const std::vector<int32_t>& prompt,
                                         const std::vector<int32_t>& forced) {
  std::vector<std::vector<float>> out;
  std::vector<int32_t> tokens = prompt;
  int32_t cached = 0;
  for (int i = 0; i < kSteps; ++i) {
    StepInput in;
    in.return_logits = true;
    SequenceStepInput seq;
    seq.seq_id = 1;
    seq.tokens = tokens;
    seq.num_cached = cached;
    seq.num_prompt_tokens = static_cast<int32_t>(prompt.size());
    if (i == 0) {
      seq.start = true;
      for (int32_t b = 0; b < 8; ++b) seq.new_blocks.push_back(b);
    }
    seq.sampling.temperature = 0.0f;
    in.seqs.push_back(std::move(seq));
    StepOutput result;
    const absl::Status status = runtime.Run(in, result);
    EXPECT_TRUE(status.ok()) << status;
    if (!status.ok()) return out;
    out.push_back(std::move(result.logits));
    cached += static_cast<int32_t>(tokens.size());
    tokens = {forced[i]};
  }
  return out;
}

TEST(CudaPipelineParallelTest, StagesMatchOneGpu) {
  const int devices = DeviceCount();
  if (devices < 1) GTEST_SKIP() << "no CUDA device";
  const std::string path = WriteModel("cuda_pp");
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378, 300, 290, 555, 901};
  ModelLoadOptions options;
  options.kv_blocks = 8;
  options.kv_block_size = 16;
  auto one = testing::LoadForTest(path, options, 1, DeviceSpec::Of(DeviceKind::kCuda, 0));
  ASSERT_TRUE(one.ok()) << one.status();
  std::vector<int32_t> chain;
  const std::vector<std::vector<float>> want = StepLogits(*one->runner, prompt, &chain, nullptr);
  ASSERT_EQ(want.size(), static_cast<size_t>(kSteps));

  // TP 1 x PP 2, and TP 2 x PP 2 where four GPUs exist: rank (t, s) on GPU s * tp + t joins
  // its stage's TP group, then its TP index's pipeline, as a worker does.
  for (int tp : {1, 2}) {
    const int pp = 2;
    const bool nccl = devices >= tp * pp;  // else every rank on GPU 0 (one GPU only)
    if (!nccl && devices > 1) continue;
    SCOPED_TRACE(absl::StrCat("TP ", tp, " x PP ", pp, nccl ? " over NCCL" : " on one GPU"));
    FileStore store(testing::TempDir("cuda_pp_store_" + std::to_string(tp)));
    // Groups on one GPU: a TP group per stage, a pipeline per TP index.
    std::vector<std::unique_ptr<SameDeviceGroup>> tp_groups, pp_groups;
    for (int s = 0; s < pp; ++s) tp_groups.push_back(std::make_unique<SameDeviceGroup>(tp, kGroupFloats));
    for (int t = 0; t < tp; ++t) pp_groups.push_back(std::make_unique<SameDeviceGroup>(pp, kGroupFloats));
    std::vector<std::vector<std::vector<float>>> got(tp * pp);
    std::vector<std::thread> ranks;
    for (int s = 0; s < pp; ++s) {
      for (int t = 0; t < tp; ++t) {
        ranks.emplace_back([&, s, t] {
          const int device = nccl ? s * tp + t : 0;
          const int slot = s * tp + t;
          absl::StatusOr<std::unique_ptr<Communicator>> tp_comm;  // outlives the backend
          auto backend = MakeBackend(OnGpu(device));
          ASSERT_TRUE(backend.ok()) << backend.status();
          if (tp > 1) {
            tp_comm = nccl ? NcclGroup(t, tp, device, "tp" + std::to_string(s), store,
                                       (*backend)->stream())
                           : tp_groups[s]->Rank(t, (*backend)->stream());
            ASSERT_TRUE(tp_comm.ok()) << tp_comm.status();
          }
          auto pp_comm = nccl ? NcclGroup(s, pp, device, "pp" + std::to_string(t), store)
                              : pp_groups[t]->Rank(s, (*backend)->stream());
          ASSERT_TRUE(pp_comm.ok()) << pp_comm.status();
          ModelLoadOptions shard = options;
          shard.layer_begin = s * 2;
          shard.layer_end = s * 2 + 2;
          if (tp > 1) {
            shard.tp_rank = t;
            shard.tp_size = tp;
            shard.comm = tp_comm->get();
          }
          auto runner = LoadModel(path, **backend, shard);
          ASSERT_TRUE(runner.ok()) << runner.status();
          StageRole role;
          role.pp_rank = s;
          role.pp_size = pp;
          role.tp_rank = t;
          role.pp_comm = pp_comm->get();
          ShardRuntime runtime(*std::move(backend), *std::move(runner), role);
          // Every stage records its decode steps (the hand-offs are around them).
          EXPECT_FALSE(runtime.runner().backend().GraphBatches().empty());
          got[slot] = RunSteps(runtime, prompt, chain);
        });
      }
    }
    for (std::thread& r : ranks) r.join();
    // The last stage's TP rank 0 samples and returns the logits.
    if (tp == 1) {
      EXPECT_EQ(got[pp - 1], want) << "a pipeline's hand-off changed the bits";
    } else {
      ExpectCloseToOneGpu(got[(pp - 1) * tp], want, "the last stage");
    }
  }
}

}  // namespace
}  // namespace strata

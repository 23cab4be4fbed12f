// GlooCommunicator: Strata's Communicator contract on top of Gloo 0.5 (Debian
// 0.0~git20220518).
//
// Rendezvous: gloo::rendezvous::Context::connectFullMesh publishes each rank's pair addresses
// through a gloo Store; StoreAdapter maps that Store onto our KeyValueStore under a prefix and
// bounds every wait by the group timeout. Collectives use the options-style algorithms
// (gloo::allreduce / allgather / broadcast / barrier), each with a fresh tag and the group
// timeout. Send/Recv use unbound buffers on slots numbered per (peer, direction), so the n-th
// Send to a peer matches that peer's n-th Recv from us.
//
// Gloo reports failures by throwing (IoException for I/O and timeouts, EnforceNotMet for
// violated preconditions). Guarded() is the one place they are caught; the first error is
// latched and the communicator refuses further calls.
#include "worker/comm/gloo_communicator.h"

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/unbound_buffer.h>
#include <signal.h>

#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/comm/comm_util.h"

namespace strata {
namespace {

using comm_internal::CheckCount;
using comm_internal::CheckRank;
using comm_internal::OpContext;

// Thrown by StoreAdapter through Gloo's rendezvous code; the status it carries is returned.
struct StoreFailure : std::runtime_error {
  explicit StoreFailure(absl::Status s) : std::runtime_error(s.ToString()), status(std::move(s)) {}
  absl::Status status;
};

// gloo::rendezvous::Store over a KeyValueStore. Gloo's keys are rank numbers ("0", "1", ...);
// they are stored as "<prefix>/<key>".
class StoreAdapter : public gloo::rendezvous::Store {
 public:
  StoreAdapter(KeyValueStore& store, std::string prefix, std::chrono::milliseconds timeout)
      : store_(store), prefix_(std::move(prefix)), timeout_(timeout) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    absl::Status status = store_.Set(Key(key), std::string(data.begin(), data.end()));
    if (!status.ok()) throw StoreFailure(status);
  }

  std::vector<char> get(const std::string& key) override {
    const std::string value = Fetch(key, timeout_);
    return std::vector<char>(value.begin(), value.end());
  }

  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }

  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout)
      override {
    using Clock = std::chrono::steady_clock;
    const Clock::time_point deadline = Clock::now() + timeout;
    for (const std::string& key : keys) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      Fetch(key, std::max(left, std::chrono::milliseconds(0)));
    }
  }

 private:
  std::string Key(const std::string& key) const { return absl::StrCat(prefix_, "/", key); }

  // The value under `key`; throws StoreFailure naming the missing rank on timeout.
  std::string Fetch(const std::string& key, std::chrono::milliseconds timeout) {
    absl::StatusOr<std::string> value = store_.Get(Key(key), timeout);
    if (value.ok()) return *std::move(value);
    throw StoreFailure(absl::Status(
        value.status().code(),
        absl::StrCat("rank ", key, " did not publish its address under '", Key(key),
                     "' within ", timeout.count(), " ms: ", value.status().message())));
  }

  KeyValueStore& store_;
  std::string prefix_;
  std::chrono::milliseconds timeout_;
};

// Slot of the seq-th message between two ranks in one direction; the prefix keeps it apart
// from the slots Gloo's collectives build (prefixes 0x01..0x08).
uint64_t P2pSlot(uint64_t seq) {
  return (uint64_t{0xA5} << 56) | (seq & ((uint64_t{1} << 56) - 1));
}

// Gloo's TCP pairs write with plain writev, so a write to a peer that died raises SIGPIPE and
// kills the process before Gloo can report the error. Ignore SIGPIPE (EPIPE then becomes an
// IoException), unless the process already installed its own handler.
void IgnoreSigpipeOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      sigaction(SIGPIPE, &ignore, nullptr);
    }
  });
}

}  // namespace

struct GlooCommunicator::State {
  GlooOptions options;
  std::shared_ptr<gloo::rendezvous::Context> context;
  uint32_t next_tag = 0;
  std::vector<uint64_t> send_seq;  // [world_size]: messages sent to each peer
  std::vector<uint64_t> recv_seq;  // [world_size]: messages received from each peer
  comm_internal::ErrorLatch latch;

  std::string Context(const char* op, int peer = -1) const {
    return OpContext("Gloo", op, options.rank, options.world_size, peer);
  }

  // Runs `body` unless the communicator is broken, turning Gloo's exceptions into a latched
  // Status: Gloo timeouts are DeadlineExceeded, other I/O failures (a peer closed its
  // connection) Unavailable, anything else Internal.
  template <typename Body>
  absl::Status Guarded(const char* op, int peer, Body&& body) {
    const std::string context_text = Context(op, peer);
    STRATA_RETURN_IF_ERROR(latch.CheckUsable(context_text));
    const std::string limit = absl::StrCat(" (timeout ", options.timeout.count(), " ms)");
    try {
      body();
      return absl::OkStatus();
    } catch (const gloo::IoException& e) {
      const std::string what = e.what();
      const std::string msg = absl::StrCat(context_text, ": ", what, limit);
      return latch.Record(absl::StrContains(what, "Timed out") ? absl::DeadlineExceededError(msg)
                                                               : absl::UnavailableError(msg));
    } catch (const StoreFailure& e) {
      return latch.Record(absl::Status(e.status.code(),
                                       absl::StrCat(context_text, ": ", e.status.message())));
    } catch (const std::exception& e) {  // gloo::EnforceNotMet, gloo::Exception, std::*
      return latch.Record(absl::InternalError(absl::StrCat(context_text, ": ", e.what(), limit)));
    }
  }
};

GlooCommunicator::GlooCommunicator(std::unique_ptr<State> state) : state_(std::move(state)) {}

GlooCommunicator::~GlooCommunicator() = default;

absl::StatusOr<std::unique_ptr<GlooCommunicator>> GlooCommunicator::Create(
    const GlooOptions& options, KeyValueStore& store) {
  auto state = std::make_unique<State>();
  state->options = options;
  const std::string context_text = state->Context("rendezvous");
  if (options.world_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(context_text, ": world_size must be >= 1"));
  }
  STRATA_RETURN_IF_ERROR(
      CheckRank(context_text, "rank", options.rank, 0, options.world_size, /*allow_self=*/true));
  if (options.hostname.empty() && options.iface.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(context_text, ": set a hostname or an interface to bind"));
  }
  IgnoreSigpipeOnce();
  state->send_seq.assign(options.world_size, 0);
  state->recv_seq.assign(options.world_size, 0);
  State& s = *state;
  STRATA_RETURN_IF_ERROR(s.Guarded("rendezvous", -1, [&] {
    gloo::transport::tcp::attr attr;
    if (!options.hostname.empty()) {
      attr.hostname = options.hostname;
    } else {
      attr.iface = options.iface;
    }
    std::shared_ptr<gloo::transport::Device> device = gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<gloo::rendezvous::Context>(options.rank, options.world_size);
    context->setTimeout(options.timeout);
    StoreAdapter adapter(store, options.store_prefix, options.timeout);
    context->connectFullMesh(adapter, device);
    s.context = std::move(context);
  }));
  return std::unique_ptr<GlooCommunicator>(new GlooCommunicator(std::move(state)));
}

int GlooCommunicator::rank() const { return state_->options.rank; }

int GlooCommunicator::world_size() const { return state_->options.world_size; }

absl::Status GlooCommunicator::AllReduceSum(float* data, int64_t n) {
  STRATA_RETURN_IF_ERROR(CheckCount(state_->Context("AllReduceSum"), n, data));
  if (n == 0) return absl::OkStatus();
  return state_->Guarded("AllReduceSum", -1, [&] {
    gloo::AllreduceOptions opts(state_->context);
    opts.setOutput(data, static_cast<size_t>(n));
    opts.setReduceFunction(
        static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
    opts.setTag(state_->next_tag++);
    opts.setTimeout(state_->options.timeout);
    gloo::allreduce(opts);
  });
}

absl::Status GlooCommunicator::AllGather(const float* in, int64_t n, float* out) {
  const std::string context_text = state_->Context("AllGather");
  STRATA_RETURN_IF_ERROR(CheckCount(context_text, n, in));
  STRATA_RETURN_IF_ERROR(CheckCount(context_text, n, out));
  if (n == 0) return absl::OkStatus();
  return state_->Guarded("AllGather", -1, [&] {
    gloo::AllgatherOptions opts(state_->context);
    opts.setInput(const_cast<float*>(in), static_cast<size_t>(n));  // Gloo only reads it
    opts.setOutput(out, static_cast<size_t>(n) * state_->options.world_size);
    opts.setTag(state_->next_tag++);
    opts.setTimeout(state_->options.timeout);
    gloo::allgather(opts);
  });
}

absl::Status GlooCommunicator::Broadcast(float* data, int64_t n, int root) {
  const std::string context_text = state_->Context("Broadcast", root);
  STRATA_RETURN_IF_ERROR(CheckCount(context_text, n, data));
  STRATA_RETURN_IF_ERROR(CheckRank(context_text, "root", root, rank(), world_size(), true));
  if (n == 0) return absl::OkStatus();
  return state_->Guarded("Broadcast", root, [&] {
    gloo::BroadcastOptions opts(state_->context);
    opts.setOutput(data, static_cast<size_t>(n));
    opts.setRoot(root);
    opts.setTag(state_->next_tag++);
    opts.setTimeout(state_->options.timeout);
    gloo::broadcast(opts);
  });
}

absl::Status GlooCommunicator::Send(const float* data, int64_t n, int peer) {
  const std::string context_text = state_->Context("Send", peer);
  STRATA_RETURN_IF_ERROR(CheckCount(context_text, n, data));
  STRATA_RETURN_IF_ERROR(CheckRank(context_text, "peer", peer, rank(), world_size(), false));
  if (n == 0) return absl::OkStatus();
  return state_->Guarded("Send", peer, [&] {
    const uint64_t slot = P2pSlot(state_->send_seq[peer]++);
    auto buffer = state_->context->createUnboundBuffer(const_cast<float*>(data),  // read only
                                                       static_cast<size_t>(n) * sizeof(float));
    buffer->send(peer, slot);
    buffer->waitSend(state_->options.timeout);
  });
}

absl::Status GlooCommunicator::Recv(float* data, int64_t n, int peer) {
  const std::string context_text = state_->Context("Recv", peer);
  STRATA_RETURN_IF_ERROR(CheckCount(context_text, n, data));
  STRATA_RETURN_IF_ERROR(CheckRank(context_text, "peer", peer, rank(), world_size(), false));
  if (n == 0) return absl::OkStatus();
  return state_->Guarded("Recv", peer, [&] {
    const uint64_t slot = P2pSlot(state_->recv_seq[peer]++);
    auto buffer =
        state_->context->createUnboundBuffer(data, static_cast<size_t>(n) * sizeof(float));
    buffer->recv(peer, slot);
    buffer->waitRecv(state_->options.timeout);
  });
}

absl::Status GlooCommunicator::Barrier() {
  return state_->Guarded("Barrier", -1, [&] {
    gloo::BarrierOptions opts(state_->context);
    opts.setTag(state_->next_tag++);
    opts.setTimeout(state_->options.timeout);
    gloo::barrier(opts);
  });
}

}  // namespace strata

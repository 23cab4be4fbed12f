// Fuzz target: the protobuf messages a worker accepts while serving, run as a worker runs them.
// An input is a sequence of frames, each [kind: u8][length: u16 little-endian][bytes]: kind 0 a
// StepRequest (decoded and run by the shard runtime of a small model: validation, block
// tables, the forward pass, sampling), kind 1 a ReleaseRequest, kind 2 a StepResult as the
// coordinator decodes one. Afterwards every sequence the input named is released, so inputs
// do not leak state into each other. A malformed step must be refused whole (InvalidArgument),
// never crash or corrupt the cache for later steps.
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "proto/step_codec.h"
#include "strata/v1/worker.pb.h"
#include "tests/fuzz/fuzz_support.h"
#include "worker/runtime/local_executor.h"

namespace strata::fuzz {
namespace {

LocalExecutor& Worker() {
  static LocalExecutor* executor = [] {
    QuietLogs();
    LocalExecutorOptions options;
    options.model = SmallModel();
    options.kv_tokens = 1024;
    options.kv_block_size = 16;
    options.max_step_tokens = 256;
    options.max_logit_rows = 32;
    auto created = LocalExecutor::Create(options);
    if (!created.ok()) PropertyFailed(created.status().ToString());
    return created->release();
  }();
  return *executor;
}

absl::Status Run(const StepInput& step, StepOutput& out) {
  LocalExecutor& worker = Worker();
  auto ticket = worker.Submit(step);
  if (!ticket.ok()) return ticket.status();
  auto result = worker.Wait(*ticket);
  if (!result.ok()) return result.status();
  out = *std::move(result);
  return absl::OkStatus();
}

}  // namespace
}  // namespace strata::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  strata::fuzz::Worker();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  std::set<uint64_t> named;
  size_t at = 0;
  while (at + 3 <= size) {
    const uint8_t kind = data[at] % 3;
    const size_t length = std::min<size_t>(data[at + 1] | (data[at + 2] << 8), size - at - 3);
    const void* bytes = data + at + 3;
    at += 3 + length;
    if (kind == 0) {
      v1::StepRequest request;
      if (!request.ParseFromArray(bytes, static_cast<int>(length))) continue;
      const StepInput step = DecodeStep(request);
      for (const auto& seq : step.seqs) named.insert(seq.seq_id);
      StepOutput out;
      const absl::Status status = fuzz::Run(step, out);
      if (status.ok()) {
        size_t sampled = 0;
        for (const auto& seq : step.seqs) sampled += seq.sample;
        if (out.tokens.size() != sampled) {
          fuzz::PropertyFailed(absl::StrCat("a step with ", sampled, " sampled sequences returned ",
                                            out.tokens.size(), " tokens"));
        }
        const int32_t vocab = static_cast<int32_t>(fuzz::Worker().config().vocab_size);
        for (int32_t t : out.tokens) {
          if ((t < 0 || t >= vocab) && t != kNonFiniteLogits) {
            fuzz::PropertyFailed(absl::StrCat("sampled token ", t, " outside the vocabulary"));
          }
        }
      }
    } else if (kind == 1) {
      v1::ReleaseRequest request;
      if (!request.ParseFromArray(bytes, static_cast<int>(length))) continue;
      StepInput release;
      release.release.assign(request.seq_ids().begin(), request.seq_ids().end());
      StepOutput out;
      (void)fuzz::Run(release, out);
    } else {
      v1::StepResult result;
      if (!result.ParseFromArray(bytes, static_cast<int>(length))) continue;
      StepOutput out;
      DecodeStepOutput(result, out);
    }
  }
  if (!named.empty()) {
    StepInput release;
    release.release.assign(named.begin(), named.end());
    StepOutput out;
    if (absl::Status s = fuzz::Run(release, out); !s.ok()) {
      fuzz::PropertyFailed("releasing the input's sequences failed: " + s.ToString());
    }
  }
  return 0;
}

// A Gloo group rendezvousing through GrpcStore against a real coordinator, all in forked
// processes: rank 2 runs the CoordinatorServer (publishing its ephemeral port through a
// FileStore), ranks 0 and 1 register as workers, join a 2-rank GlooCommunicator through
// GrpcStore and all-reduce.
// Its own binary: RunRanks needs a parent with no threads, and gRPC starts threads.
#include <vector>

#include "absl/strings/numbers.h"
#include "coordinator/cluster/coordinator_server.h"
#include "gtest/gtest.h"
#include "tests/worker/comm/gloo_test_util.h"
#include "worker/comm/grpc_store.h"
#include "worker/service/worker_agent.h"

namespace strata {
namespace {

using testing::ExpectAllOk;
using testing::RunRanks;

constexpr int kWorld = 2;          // Gloo ranks
constexpr int kServerRank = kWorld;  // the extra child that runs the coordinator

int RunCoordinator(const FileStore& files_in, int rank) {
  FileStore files = files_in;
  CoordinatorServerOptions options;
  options.host = "127.0.0.1";
  auto server = CoordinatorServer::Start(options);
  STRATA_CHILD_CHECK_OK(server.status());
  STRATA_CHILD_CHECK_OK(files.Set("port", std::to_string((*server)->port())));
  // Serve until both ranks have finished their all-reduce.
  auto done = (*server)->store().Get("finished", testing::kTimeout, nullptr);
  STRATA_CHILD_CHECK_OK(done.status());
  (*server)->Stop();
  return 0;
}

TEST(GrpcRendezvousTest, TwoProcessGlooAllReduceThroughTheCoordinatorStore) {
  const FileStore files(testing::TestStoreDir());
  ExpectAllOk(RunRanks(kWorld + 1, [&](int rank) {
    if (rank == kServerRank) return RunCoordinator(files, rank);
    FileStore port_files = files;
    auto port = port_files.Get("port", testing::kTimeout);
    STRATA_CHILD_CHECK_OK(port.status());
    GrpcStore store("127.0.0.1:" + *port);
    // The coordinator's store serves registered workers only: register as a worker does.
    WorkerAgentOptions agent_options;
    agent_options.coordinator = "127.0.0.1:" + *port;
    agent_options.host = "127.0.0.1:" + std::to_string(9100 + rank);
    agent_options.inventory.device_count = 1;
    agent_options.inventory.memory_bytes = {int64_t{1} << 30};
    agent_options.inventory.node_name = "local";
    agent_options.on_registered = [&store](uint64_t id, const std::string& token) {
      store.SetSession(id, token);
    };
    auto agent = WorkerAgent::Start(agent_options);
    STRATA_CHILD_CHECK_OK(agent.status());
    GlooOptions options;
    options.rank = rank;
    options.world_size = kWorld;
    options.timeout = testing::kTimeout;
    auto comm = GlooCommunicator::Create(options, store);
    STRATA_CHILD_CHECK_OK(comm.status());
    std::vector<float> data(1000, static_cast<float>(rank + 1));  // [1000]
    STRATA_CHILD_CHECK_OK((*comm)->AllReduceSum(data.data(), 1000));
    for (float x : data) STRATA_CHILD_CHECK(x == 3.0f);
    auto finished = store.Add("ranks_done", 1);
    STRATA_CHILD_CHECK_OK(finished.status());
    if (*finished == kWorld) STRATA_CHILD_CHECK_OK(store.Set("finished", "1"));
    return 0;
  }));
}

}  // namespace
}  // namespace strata

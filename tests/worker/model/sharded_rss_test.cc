// Sharded loading keeps a worker's memory to its shard: a tensor-parallel rank or a pipeline
// stage maps the whole file but faults in only the pages of its slices, so the resident part
// of the file mapping (the `Rss:` of its entries in /proc/self/smaps, which leaves out heap
// and KV cache) stays close to ModelRunner::weight_bytes() and far below the file size.
//
// The model is a random-weight f32 Llama (hidden 2048, 16 heads of 128, 4 KV heads,
// intermediate 2048, 2 layers, ~185 MB) rewritten with 4096-byte tensor alignment, so that at
// TP 2 every slice is whole pages: each rank's segment of an o_proj / down_proj row is 4 KiB.
// (With GGUF's default 32-byte alignment a segment can straddle one more page per row.)
//
// What the kernel does (measured on Linux 6.18, see mapped_file.h): MADV_RANDOM stops
// readahead, but not fault-around: a read fault also maps the up to 64 KiB of neighbouring
// pages that are *already in the page cache*. Ranks on separate hosts have separate page
// caches, so neighbours are never cached and a rank's resident set is its shard; the TP test
// reproduces that by giving each rank its own copy of the file. Ranks sharing one host's page
// cache map each other's interleaved column-slice pages (o_proj, down_proj) through
// fault-around; no extra memory is used (they are the same page-cache pages, counted in both
// processes' Rss), and the shared-file test measures and bounds that case.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/formats/gguf.h"
#include "common/formats/gguf_constants.h"
#include "common/formats/gguf_writer.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"
#include "tests/worker/comm/multiprocess.h"
#include "worker/comm/gloo_communicator.h"
#include "worker/comm/store.h"
#include "tests/worker/model/model_testing.h"
#include "worker/backend/cpu_backend.h"
#include "worker/model/synthetic_model.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kPageAlignment = 4096;
constexpr int64_t kMiB = int64_t{1} << 20;
const std::vector<int32_t> kPrompt = {1, 300, 301, 302};

// One rank's figures, all in bytes.
struct Measurement {
  int64_t rss = 0;           // resident part of the model file's mapping, after one step
  int64_t weight_bytes = 0;  // ModelRunner::weight_bytes(): this rank's shard
  int64_t decode_bytes = 0;  // ModelRunner::decode_weight_bytes(): what a step must touch
};

// Copies the GGUF at `from` to `to` with tensor data aligned to `alignment` bytes.
absl::Status Realign(const std::string& from, const std::string& to, int64_t alignment) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> in, GgufFile::Open(from));
  GgufWriter out(alignment);
  for (const auto& [key, value] : in->metadata()) {
    if (key != kGgufAlignmentKey) out.SetValue(key, value);
  }
  for (const std::string& name : in->TensorNames()) {
    STRATA_ASSIGN_OR_RETURN(const TensorView view, in->Get(name));
    STRATA_RETURN_IF_ERROR(out.AddTensor(name, view.dtype, view.shape, view.data));
  }
  return out.Write(to);
}

// Writes `path` back and evicts it from the page cache (clean, unmapped pages go without
// privileges), so that no page of it is resident before a rank loads.
absl::Status DropFromPageCache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat(path, ": cannot open"));
  const bool ok = ::fdatasync(fd) == 0 && ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0;
  ::close(fd);
  return ok ? absl::OkStatus() : absl::InternalError(absl::StrCat(path, ": cannot evict"));
}

// The resident bytes of this process's mappings of `path` (sum of their smaps `Rss:`).
int64_t MappedRss(const std::string& path) {
  std::ifstream smaps("/proc/self/smaps");
  int64_t kib = 0;
  bool in_file = false;
  for (std::string line; std::getline(smaps, line);) {
    std::istringstream fields(line);
    std::string first, perms, offset, dev, inode, name;
    fields >> first;
    if (first.find('-') != std::string::npos && first.back() != ':') {  // a mapping's header
      fields >> perms >> offset >> dev >> inode >> name;
      in_file = name == path;
    } else if (in_file && first == "Rss:") {
      int64_t value = 0;
      fields >> value;
      kib += value;
    }
  }
  return kib * 1024;
}

// Loads layers [begin, end) as TP rank `comm` (nullptr: one rank), runs one prompt step, and
// measures. Runs in a forked child.
absl::StatusOr<Measurement> LoadRunMeasure(const std::string& path, int64_t begin, int64_t end,
                                           Communicator* comm) {
  std::unique_ptr<Backend> backend = MakeCpuBackend(1);
  ModelLoadOptions options;
  options.layer_begin = begin;
  options.layer_end = end;
  options.kv_blocks = 1;
  options.kv_block_size = 16;
  options.comm = comm;
  if (comm != nullptr) {
    options.tp_rank = comm->rank();
    options.tp_size = comm->world_size();
  }
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<ModelRunner> runner, LoadModel(path, *backend, options));
  // Stages after the first read zero hidden states: the step only has to touch every weight.
  const StepBatch batch = testing::OneSequence(*runner, kPrompt, 0, /*all_logits=*/false);
  const std::vector<float> hidden(
      runner->is_first_stage() ? 0 : kPrompt.size() * runner->config().hidden_size, 0.0f);
  STRATA_RETURN_IF_ERROR(testing::Forward(*runner, batch, hidden).status());
  return Measurement{MappedRss(path), runner->weight_bytes(), runner->decode_weight_bytes()};
}

// Child side: writes "rss weight decode" or "error <status>" to `result`.
int WriteResult(const absl::StatusOr<Measurement>& m, const fs::path& result) {
  std::ofstream out(result);
  if (m.ok()) {
    out << m->rss << " " << m->weight_bytes << " " << m->decode_bytes << "\n";
  } else {
    out << "error " << m.status().ToString() << "\n";
  }
  return out.good() ? 0 : 1;
}

absl::StatusOr<Measurement> ReadResult(const fs::path& result) {
  std::ifstream in(result);
  std::string first;
  in >> first;
  if (first == "error" || first.empty()) {
    return absl::InternalError(std::string(std::istreambuf_iterator<char>(in), {}));
  }
  Measurement m;
  m.rss = std::stoll(first);
  in >> m.weight_bytes >> m.decode_bytes;
  return m;
}

// Child body of the TP tests: joins the group, then LoadRunMeasure on `path`.
int RunTpRank(int rank, const std::string& path, const fs::path& store_dir,
              const fs::path& result) {
  FileStore store(store_dir);
  GlooOptions options;
  options.rank = rank;
  options.world_size = 2;
  options.timeout = std::chrono::milliseconds(20000);
  auto comm = GlooCommunicator::Create(options, store);
  if (!comm.ok()) return WriteResult(comm.status(), result);
  return WriteResult(LoadRunMeasure(path, 0, -1, comm->get()), result);
}

class ShardedRssTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(testing::TempDir("sharded_rss"));
    SyntheticModelSpec spec;
    spec.name = "sharded-rss-test";
    spec.hidden_size = 2048;
    spec.intermediate_size = 2048;
    spec.num_heads = 16;
    spec.num_kv_heads = 4;
    spec.num_layers = 2;
    spec.vocab_size = 512;
    const std::string unaligned = (*dir_ / "unaligned.gguf").string();
    ASSERT_TRUE(WriteSyntheticModel(spec, unaligned).ok());
    ASSERT_TRUE(Realign(unaligned, Model(0), kPageAlignment).ok());
    fs::remove(unaligned);
    fs::copy_file(Model(0), Model(1));  // rank 1's "host"
  }
  static void TearDownTestSuite() { delete dir_; }

  // The model file rank `rank` uses in the separate-hosts case (rank 0's is the shared one).
  static std::string Model(int rank) {
    return fs::canonical(*dir_).string() + "/model" + std::to_string(rank) + ".gguf";
  }

  // Forks two TP ranks on `paths[rank]`, each from a cold page cache; returns their figures.
  static std::vector<Measurement> RunTp(const std::vector<std::string>& paths,
                                        const std::string& name) {
    for (const std::string& p : paths) EXPECT_TRUE(DropFromPageCache(p).ok());
    const fs::path dir = testing::TempDir(name);
    auto result = [&](int rank) { return dir / absl::StrCat("rank", rank, ".txt"); };
    const auto exits = testing::RunRanks(2, [&](int rank) {
      return RunTpRank(rank, paths[rank], dir / "store", result(rank));
    }, std::chrono::seconds(60));
    std::vector<Measurement> out;
    for (int rank = 0; rank < 2; ++rank) {
      EXPECT_TRUE(exits[rank].ok()) << exits[rank].Describe();
      auto m = ReadResult(result(rank));
      EXPECT_TRUE(m.ok()) << "rank " << rank << ": " << m.status();
      out.push_back(m.value_or(Measurement{}));
    }
    return out;
  }

  static void Print(const std::string& what, const Measurement& m, int64_t file_bytes) {
    std::printf("%s: file-mapping RSS %.1f MiB, shard %.1f MiB (RSS/shard %.3f), "
                "file %.1f MiB (RSS/file %.3f)\n",
                what.c_str(), static_cast<double>(m.rss) / kMiB,
                static_cast<double>(m.weight_bytes) / kMiB,
                static_cast<double>(m.rss) / static_cast<double>(m.weight_bytes),
                static_cast<double>(file_bytes) / kMiB,
                static_cast<double>(m.rss) / static_cast<double>(file_bytes));
  }

  // The step read at least every weight it must (so the measurement is not vacuous), and at
  // most 2% + 1 MiB beyond the shard (the header, fault-around at the edges of its slices).
  static void ExpectCloseToShard(const Measurement& m) {
    EXPECT_GE(m.rss, m.decode_bytes);
    EXPECT_LE(m.rss, m.weight_bytes + m.weight_bytes / 50 + kMiB);
  }

  static fs::path* dir_;
};

fs::path* ShardedRssTest::dir_ = nullptr;

// Each rank on its own copy of the file, as on separate hosts.
TEST_F(ShardedRssTest, TensorParallelRankMapsOnlyItsShard) {
  const int64_t file_bytes = static_cast<int64_t>(fs::file_size(Model(0)));
  const auto ranks = RunTp({Model(0), Model(1)}, "tp_separate");
  for (int rank = 0; rank < static_cast<int>(ranks.size()); ++rank) {
    SCOPED_TRACE(absl::StrCat("rank ", rank));
    Print(absl::StrCat("TP2 rank ", rank, " (own file copy)"), ranks[rank], file_bytes);
    ExpectCloseToShard(ranks[rank]);
    EXPECT_LT(ranks[rank].rss, file_bytes * 6 / 10);
  }
}

// Both ranks on one file, one page cache: fault-around maps the other rank's cached pages of
// the column-sliced o_proj and down_proj (interleaved 4 KiB segments) but never its row
// slices, so the resident set stays between the shard and the shard plus those tensors'
// other halves.
TEST_F(ShardedRssTest, TensorParallelRanksSharingAPageCache) {
  const int64_t file_bytes = static_cast<int64_t>(fs::file_size(Model(0)));
  const auto ranks = RunTp({Model(0), Model(0)}, "tp_shared");
  // 2 layers x (o_proj, down_proj) x the other rank's half of a [2048, 2048] f32 matrix.
  const int64_t other_halves = 2 * 2 * (16 * kMiB / 2);
  for (int rank = 0; rank < static_cast<int>(ranks.size()); ++rank) {
    SCOPED_TRACE(absl::StrCat("rank ", rank));
    Print(absl::StrCat("TP2 rank ", rank, " (shared file)"), ranks[rank], file_bytes);
    EXPECT_GE(ranks[rank].rss, ranks[rank].decode_bytes);
    EXPECT_LE(ranks[rank].rss, ranks[rank].weight_bytes + other_halves + 2 * kMiB);
  }
}

// Pipeline stage 0 of 2 (embedding and layer 0), one process.
TEST_F(ShardedRssTest, PipelineStageMapsOnlyItsLayers) {
  const std::string path = Model(0);
  const int64_t file_bytes = static_cast<int64_t>(fs::file_size(path));
  ASSERT_TRUE(DropFromPageCache(path).ok());
  const fs::path result = testing::TempDir("pp_stage0") / "stage0.txt";
  const auto exits = testing::RunRanks(1, [&](int /*rank*/) {
    return WriteResult(LoadRunMeasure(path, 0, 1, nullptr), result);
  }, std::chrono::seconds(60));
  ASSERT_TRUE(exits[0].ok()) << exits[0].Describe();
  auto m = ReadResult(result);
  ASSERT_TRUE(m.ok()) << m.status();
  Print("PP2 stage 0", *m, file_bytes);
  ExpectCloseToShard(*m);
  EXPECT_LT(m->rss, file_bytes * 6 / 10);
}

}  // namespace
}  // namespace strata

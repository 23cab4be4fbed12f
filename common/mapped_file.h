// MappedFile: a read-only mmap of a whole file. Model weights are used in place from it, so
// loading a model costs page faults, not copies, and each worker touches only its shard.
//
// Why the mapping is MADV_RANDOM: a tensor-parallel rank reads its slices of every tensor
// (a band of rows, or a segment of every row), so the bytes it needs sit between bytes other
// ranks need. Readahead on a fault would read those neighbours into the page cache, and the
// kernel's fault-around (on a read fault it also maps the neighbouring pages, up to 64 KiB,
// that are already in the page cache) would then map them into this process: its resident set
// would grow towards the whole file. MADV_RANDOM turns readahead off; the loader asks for
// exactly its slices with WillNeed instead, so I/O is still batched.
//
// MADV_RANDOM does not turn fault-around off (measured on Linux 6.18; MADV_POPULATE_READ
// faults around too): a page another process already brought into the page cache is mapped
// here when a fault lands within its 64 KiB window. Ranks on separate hosts never see each
// other's pages (unless something else read the file there), so each one's resident set is
// its shard. Ranks sharing a host's page cache
// also map each other's pages that interleave with theirs (column slices); those pages are the
// same page-cache pages, so this inflates each process's Rss but not the host's memory. A
// slice is page-granular only if its rows' segments are whole, aligned pages: with GGUF's
// default 32-byte alignment each segment may touch one more page.
// tests/worker/model/sharded_rss_test.cc measures all three cases.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace strata {

class MappedFile {
 public:
  // Maps `path` read-only (MADV_RANDOM, see above). An empty file maps to a zero-length view.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  int64_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Starts reading the pages covering [begin, begin + size) into the page cache
  // (MADV_WILLNEED, rounded out to whole pages) without waiting for them. The part of the
  // range outside this mapping is ignored, so any pointer may be passed; best effort (errors
  // are ignored). Thread-safe.
  void WillNeed(const std::byte* begin, int64_t size) const;

  // The system page size in bytes.
  static int64_t PageSize();

 private:
  MappedFile(std::string path, const std::byte* data, int64_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  std::string path_;
  const std::byte* data_;
  int64_t size_;
};

}  // namespace strata

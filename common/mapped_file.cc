#include "common/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace strata {

absl::StatusOr<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  const int64_t size = st.st_size;
  const std::byte* data = nullptr;
  if (size > 0) {
    void* p = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat(path, ": mmap failed: ", std::strerror(err)));
    }
    // No speculative readahead: a rank's slices interleave with other ranks' (header comment).
    // Advice only, so a failure changes performance, not correctness.
    (void)::madvise(p, static_cast<size_t>(size), MADV_RANDOM);
    data = static_cast<const std::byte*>(p);
  }
  ::close(fd);
  return std::unique_ptr<MappedFile>(new MappedFile(path, data, size));
}

int64_t MappedFile::PageSize() {
  static const int64_t page_size = ::sysconf(_SC_PAGESIZE);
  return page_size;
}

void MappedFile::WillNeed(const std::byte* begin, int64_t size) const {
  if (data_ == nullptr || size <= 0) return;
  // Clip to the mapping, comparing as integers (the range may lie outside it).
  const auto base = reinterpret_cast<uintptr_t>(data_);
  const auto first = std::max(reinterpret_cast<uintptr_t>(begin), base);
  const auto last = std::min(reinterpret_cast<uintptr_t>(begin) + static_cast<uintptr_t>(size),
                             base + static_cast<uintptr_t>(size_));
  if (first >= last) return;
  // The mapping starts on a page boundary, so rounding the offsets rounds the addresses.
  const auto page = static_cast<uintptr_t>(PageSize());
  const uintptr_t start = first & ~(page - 1);
  const uintptr_t end = (last + page - 1) & ~(page - 1);
  (void)::madvise(reinterpret_cast<void*>(start), end - start, MADV_WILLNEED);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), static_cast<size_t>(size_));
}

}  // namespace strata

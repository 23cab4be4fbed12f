// FileStore: one file per key, published by rename so readers never see a partial value.
#include "worker/comm/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

// Keys may hold '/', ':' and the like; anything outside [A-Za-z0-9._-] becomes %XX, so an
// escaped key never contains '#', which the temporary and lock file suffixes use.
std::string EscapeKey(const std::string& key) {
  std::string out;
  for (unsigned char c : key) {
    if (std::isalnum(c) || c == '.' || c == '_' || c == '-') {
      out.push_back(static_cast<char>(c));
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

absl::Status ErrnoError(const std::string& what, const fs::path& path) {
  return absl::UnavailableError(
      absl::StrCat("FileStore: ", what, " '", path.string(), "': ", std::strerror(errno)));
}

// Reads the whole file; NotFound when it does not exist (yet).
absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return absl::NotFoundError(path.string());
    return ErrnoError("cannot open", path);
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Writes `value` to a unique temporary name beside `path`, then renames it into place.
absl::Status WriteAtomically(const fs::path& path, const std::string& value) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const fs::path tmp =
      path.string() + absl::StrCat("#tmp.", static_cast<int64_t>(getpid()), ".", rng());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return ErrnoError("cannot create", tmp);
    out.write(value.data(), static_cast<std::streamsize>(value.size()));
    out.flush();
    if (!out) return ErrnoError("cannot write", tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status status = ErrnoError("cannot rename into", path);
    std::remove(tmp.c_str());
    return status;
  }
  return absl::OkStatus();
}

// Holds an exclusive flock on a file for its lifetime.
class FileLock {
 public:
  explicit FileLock(const fs::path& path) : fd_(open(path.c_str(), O_RDWR | O_CREAT, 0644)) {
    if (fd_ >= 0 && flock(fd_, LOCK_EX) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~FileLock() {
    if (fd_ >= 0) close(fd_);  // closing releases the lock
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

absl::Status EnsureDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("FileStore: cannot create directory '", dir.string(), "': ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace

FileStore::FileStore(fs::path dir) : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);  // errors are reported by the first call
}

fs::path FileStore::PathFor(const std::string& key) const { return dir_ / EscapeKey(key); }

absl::Status FileStore::Set(const std::string& key, const std::string& value) {
  STRATA_RETURN_IF_ERROR(EnsureDir(dir_));
  return WriteAtomically(PathFor(key), value);
}

absl::StatusOr<std::string> FileStore::Get(const std::string& key,
                                           std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const fs::path path = PathFor(key);
  const Clock::time_point deadline = Clock::now() + timeout;
  std::chrono::microseconds backoff(100);
  while (true) {
    absl::StatusOr<std::string> value = ReadFile(path);
    if (value.ok() || !absl::IsNotFound(value.status())) return value;
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("FileStore: key '", key,
                                                      "' not set after waiting ", timeout.count(),
                                                      " ms (file '", path.string(), "')"));
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::microseconds(10000));
  }
}

absl::StatusOr<int64_t> FileStore::Add(const std::string& key, int64_t delta) {
  STRATA_RETURN_IF_ERROR(EnsureDir(dir_));
  const fs::path path = PathFor(key);
  const fs::path lock_path = path.string() + "#lock";
  FileLock lock(lock_path);
  if (!lock.ok()) return ErrnoError("cannot lock", lock_path);
  int64_t value = 0;
  absl::StatusOr<std::string> old = ReadFile(path);
  if (old.ok()) {
    if (!absl::SimpleAtoi(*old, &value)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "FileStore: Add on key '", key, "' whose value is not a decimal counter"));
    }
  } else if (!absl::IsNotFound(old.status())) {
    return old.status();
  }
  value += delta;
  STRATA_RETURN_IF_ERROR(WriteAtomically(path, absl::StrCat(value)));
  return value;
}

}  // namespace strata

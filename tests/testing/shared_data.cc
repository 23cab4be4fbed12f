#include "tests/testing/shared_data.h"

#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <system_error>

namespace strata::testing {
namespace fs = std::filesystem;

namespace {

fs::path ProcessTempRoot() {
  static const fs::path root = [] {
    fs::path base = fs::temp_directory_path() / ("strata-test-" + std::to_string(::getpid()));
    fs::create_directories(base);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(fs::temp_directory_path() / ("strata-test-" + std::to_string(::getpid())), ec);
    });
    return base;
  }();
  return root;
}

}  // namespace

std::optional<fs::path> FindSharedData() {
  if (const char* env = std::getenv("STRATA_SHARED_DATA"); env != nullptr && *env != '\0') {
    if (fs::is_directory(env)) return fs::path(env);
    return std::nullopt;
  }
  std::vector<fs::path> candidates;
  if (const char* src = std::getenv("STRATA_SOURCE_DIR"); src != nullptr && *src != '\0') {
    candidates.push_back(fs::path(src) / ".." / "shared" / "data");
  }
#ifdef STRATA_SOURCE_DIR_DEFAULT
  candidates.push_back(fs::path(STRATA_SOURCE_DIR_DEFAULT) / ".." / "shared" / "data");
#endif
  for (const fs::path& c : candidates) {
    if (fs::is_directory(c)) return fs::canonical(c);
  }
  return std::nullopt;
}

fs::path SourceDir() {
  if (const char* src = std::getenv("STRATA_SOURCE_DIR"); src != nullptr && *src != '\0') {
    return src;
  }
#ifdef STRATA_SOURCE_DIR_DEFAULT
  return STRATA_SOURCE_DIR_DEFAULT;
#else
  return fs::current_path();
#endif
}

bool SharedDataRequired() {
  const char* env = std::getenv("STRATA_REQUIRE_SHARED_DATA");
  return env != nullptr && std::string(env) == "1";
}

fs::path SharedDataPath(const std::string& relative) {
  const std::optional<fs::path> root = FindSharedData();
  if (!root) return {};
  const fs::path direct = *root / relative;
  if (fs::exists(direct)) return direct;
  const fs::path xz = *root / (relative + ".xz");
  if (!fs::exists(xz)) return {};
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  const fs::path out = ProcessTempRoot() / "xz" / relative;
  if (!fs::exists(out)) {
    fs::create_directories(out.parent_path());
    const std::string cmd = "xz -dc '" + xz.string() + "' > '" + out.string() + "'";
    if (std::system(cmd.c_str()) != 0) return {};
  }
  return out;
}

fs::path TempDir(const std::string& name) {
  static int counter = 0;
  const fs::path dir = ProcessTempRoot() / (name + "-" + std::to_string(counter++));
  fs::create_directories(dir);
  return dir;
}

}  // namespace strata::testing

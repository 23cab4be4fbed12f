#include "tests/testing/node_reference.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "tests/testing/shared_data.h"

namespace strata::testing {
namespace fs = std::filesystem;

namespace {

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace

std::optional<fs::path> FindNodeReferences() {
  static const std::optional<fs::path> found = []() -> std::optional<fs::path> {
    const fs::path dir = SourceDir() / "tests" / "node";
    if (!fs::is_directory(dir / "node_modules")) return std::nullopt;
    if (std::system("node --version > /dev/null 2>&1") != 0) return std::nullopt;
    return dir;
  }();
  return found;
}

absl::StatusOr<std::string> RunNodeReference(const std::string& script,
                                             const std::string& request_json) {
  const std::optional<fs::path> dir = FindNodeReferences();
  if (!dir) return absl::FailedPreconditionError("tests/node references are not installed");
  const fs::path tmp = TempDir("node");
  const fs::path request = tmp / "request.json";
  const fs::path err = tmp / "stderr.txt";
  {
    std::ofstream out(request, std::ios::binary);
    out << request_json;
  }
  const std::string cmd = absl::StrCat("cd ", Quote(dir->string()), " && node ", Quote(script),
                                       " ", Quote(request.string()), " 2> ", Quote(err.string()));
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError("popen failed");
  std::string output;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  const int status = ::pclose(pipe);
  if (status != 0) {
    std::ifstream in(err);
    std::stringstream ss;
    ss << in.rdbuf();
    return absl::InternalError(absl::StrCat("node ", script, " failed (", status, "): ", ss.str()));
  }
  return output;
}

}  // namespace strata::testing

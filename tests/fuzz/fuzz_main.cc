// The driver of a fuzz target where libFuzzer is not linked (the GCC build): replays every
// input of the given corpus folders or files, then runs random mutations of them (bit flips,
// interesting bytes, inserted, erased, duplicated and spliced ranges) for `-runs` inputs or
// `-max_total_time` seconds. The suite runs each target this way as a short smoke test; the
// coverage-guided runs under ASan and UBSan are scripts/fuzz.sh's (libFuzzer, Clang).
//
//   http_request_fuzz [-runs=N] [-max_total_time=S] [-seed=N] [-max_len=N] CORPUS...
//
// A crash is the process dying; a property a target checks aborts with a message.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

using Input = std::vector<uint8_t>;

constexpr std::array<uint8_t, 12> kInterestingBytes = {0,    1,    0x7f, 0x80, 0xff, '\n',
                                                       '\r', '"',  '\\', '{',  '0',  ' '};

void Run(const Input& input) { LLVMFuzzerTestOneInput(input.data(), input.size()); }

Input Mutate(const std::vector<Input>& corpus, std::mt19937_64& rng, size_t max_len) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  Input x = corpus.empty() ? Input{} : corpus[pick(corpus.size())];
  const int mutations = 1 + static_cast<int>(pick(4));
  for (int m = 0; m < mutations; ++m) {
    switch (pick(7)) {
      case 0:  // flip a bit
        if (!x.empty()) x[pick(x.size())] ^= static_cast<uint8_t>(1u << pick(8));
        break;
      case 1:  // an interesting byte
        if (!x.empty()) x[pick(x.size())] = kInterestingBytes[pick(kInterestingBytes.size())];
        break;
      case 2: {  // insert random bytes
        const size_t at = pick(x.size() + 1), n = 1 + pick(8);
        for (size_t i = 0; i < n; ++i) x.insert(x.begin() + at, static_cast<uint8_t>(rng()));
        break;
      }
      case 3: {  // erase a range
        if (x.empty()) break;
        const size_t at = pick(x.size()), n = 1 + pick(std::min<size_t>(x.size() - at, 16));
        x.erase(x.begin() + at, x.begin() + at + n);
        break;
      }
      case 4: {  // duplicate a range
        if (x.empty()) break;
        const size_t at = pick(x.size()), n = 1 + pick(std::min<size_t>(x.size() - at, 32));
        const Input range(x.begin() + at, x.begin() + at + n);
        x.insert(x.begin() + pick(x.size() + 1), range.begin(), range.end());
        break;
      }
      case 5: {  // splice: the head of this one, the tail of another
        if (corpus.empty()) break;
        const Input& other = corpus[pick(corpus.size())];
        x.resize(pick(x.size() + 1));
        x.insert(x.end(), other.begin() + pick(other.size() + 1), other.end());
        break;
      }
      default:  // truncate
        x.resize(pick(x.size() + 1));
        break;
    }
  }
  if (x.size() > max_len) x.resize(max_len);
  return x;
}

bool Flag(std::string_view arg, std::string_view name, long long& value) {
  if (arg.substr(0, name.size()) != name) return false;
  value = std::atoll(std::string(arg.substr(name.size())).c_str());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  long long runs = 1000, max_total_time = 0, seed = 1, max_len = 4096;
  std::vector<Input> corpus;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (Flag(arg, "-runs=", runs) || Flag(arg, "-max_total_time=", max_total_time) ||
        Flag(arg, "-seed=", seed) || Flag(arg, "-max_len=", max_len)) {
      continue;
    }
    if (arg.starts_with("-")) continue;  // libFuzzer flags this driver does not have
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(argv[i])) {
      for (const auto& e : std::filesystem::directory_iterator(argv[i])) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(argv[i]);
    }
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      if (!in) {
        std::fprintf(stderr, "fuzz_main: cannot read %s\n", f.c_str());
        return 2;
      }
      corpus.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  }
  const auto start = std::chrono::steady_clock::now();
  for (const Input& input : corpus) Run(input);
  std::mt19937_64 rng(static_cast<uint64_t>(seed));
  long long done = 0;
  for (; done < runs; ++done) {
    if (max_total_time > 0 && std::chrono::steady_clock::now() - start >
                                  std::chrono::seconds(max_total_time)) {
      break;
    }
    Run(Mutate(corpus, rng, static_cast<size_t>(max_len)));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("fuzz_main: %zu corpus inputs and %lld mutations in %.1f s, no crash\n",
              corpus.size(), done, seconds);
  return 0;
}

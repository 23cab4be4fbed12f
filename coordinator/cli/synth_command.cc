// `strata synth`: writes a deterministic random-weight Llama-shaped GGUF model (benchmarks and
// tests; the embedded default model is the "tiny" preset).
#include <cstdio>

#include "absl/strings/str_join.h"
#include "coordinator/cli/commands.h"
#include "worker/model/synthetic_model.h"

namespace strata::cli {
namespace {

struct SynthFlags {
  std::string preset = "tiny";
  std::string dtype = "f32";
  std::string out;
  uint64_t seed = 1;
};

void RunSynth(const SynthFlags& f) {
  auto spec = SyntheticPreset(f.preset);
  ExitIfError(spec.status());
  auto dtype = ParseWeightDType(f.dtype);
  ExitIfError(dtype.status());
  spec->dtype = *dtype;
  spec->seed = f.seed;
  ExitIfError(WriteSyntheticModel(*spec, f.out));
  std::printf("wrote %s (%s, %s, random weights)\n", f.out.c_str(), spec->name.c_str(),
              f.dtype.c_str());
}

}  // namespace

void AddSynthCommand(CLI::App& app) {
  auto flags = std::make_shared<SynthFlags>();
  CLI::App* cmd = app.add_subcommand("synth", "Write a deterministic random-weight model (GGUF)");
  cmd->add_option("--preset", flags->preset, absl::StrJoin(SyntheticPresetNames(), ", "))
      ->capture_default_str();
  cmd->add_option("--dtype", flags->dtype, "f32, f16, bf16, q8_0 or q4_0")->capture_default_str();
  cmd->add_option("--seed", flags->seed, "Weight seed")->capture_default_str();
  cmd->add_option("--out,-o", flags->out, "Output .gguf path")->required();
  cmd->callback([flags] { RunSynth(*flags); });
}

}  // namespace strata::cli

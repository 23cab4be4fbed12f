#include "worker/model/model_registry.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/formats/gguf.h"
#include "common/status.h"
#include "worker/model/families.h"

namespace strata {

absl::Span<const Family* const> Families() {
  static const Family* const kFamilies[] = {
      &LlamaFamily(),  &MistralFamily(), &MixtralFamily(), &Qwen2Family(),
      &Qwen3Family(),  &Phi3Family(),    &Phi2Family(),    &Gemma2Family(),
      &Olmo2Family(),  &FalconFamily(),  &DeepseekV2Family(),
  };
  return kFamilies;
}

const Family* FindFamily(std::string_view architecture) {
  for (const Family* f : Families()) {
    for (std::string_view a : f->architectures) {
      if (a == architecture) return f;
    }
  }
  return nullptr;
}

std::vector<std::string> SupportedArchitectures() {
  std::vector<std::string> names;
  for (const Family* f : Families()) {
    for (std::string_view a : f->architectures) names.emplace_back(a);
  }
  return names;
}

absl::StatusOr<ModelContext> OpenModel(const std::string& path, bool weights_required) {
  ModelContext context;
  std::unique_ptr<WeightSource> weights;
  const bool config_only = !weights_required && std::filesystem::is_directory(path) &&
                           !std::filesystem::exists(std::filesystem::path(path) / "model.safetensors") &&
                           !std::filesystem::exists(std::filesystem::path(path) /
                                                    "model.safetensors.index.json");
  if (!config_only) {
    STRATA_ASSIGN_OR_RETURN(weights, OpenWeightSource(path));
  }
  if (const auto* gguf = dynamic_cast<const GgufFile*>(weights.get()); gguf != nullptr) {
    STRATA_ASSIGN_OR_RETURN(context.config, ConfigFromGguf(*gguf));
    context.gguf_names = true;
  } else {
    const std::filesystem::path p(path);
    STRATA_ASSIGN_OR_RETURN(context.config,
                            LoadHfConfig(std::filesystem::is_directory(p) ? p.string()
                                                                          : p.parent_path().string()));
  }
  context.family = FindFamily(context.config.architecture);
  if (context.family == nullptr) {
    return absl::UnimplementedError(absl::StrCat(
        path, ": architecture '", context.config.architecture, "' is not supported (supported: ",
        absl::StrJoin(SupportedArchitectures(), ", "), ")"));
  }
  if (absl::Status s = context.family->check(context.config); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  }
  context.weights = std::move(weights);
  return context;
}

absl::StatusOr<std::unique_ptr<ModelRunner>> LoadModel(const std::string& path, Backend& backend,
                                                       const ModelLoadOptions& options) {
  STRATA_ASSIGN_OR_RETURN(ModelContext context, OpenModel(path));
  const ModelConfig& c = context.config;
  if (c.quant.method != QuantMethod::kNone) {
    return absl::UnimplementedError(absl::StrCat(
        path, ": quantization_config (fp8, awq, gptq) checkpoints can be planned but not loaded "
              "yet; GGUF q8_0 / q4_0 files and --dtype conversion are supported"));
  }
  context.options = options;
  ModelLoadOptions& o = context.options;
  if (o.layer_end < 0) o.layer_end = c.num_layers;
  if (o.layer_begin < 0 || o.layer_begin >= o.layer_end || o.layer_end > c.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat("layer range [", o.layer_begin, ", ",
                                                   o.layer_end, ") is not inside the model's ",
                                                   c.num_layers, " layers"));
  }
  return BuildDecoder(std::move(context), backend);
}

}  // namespace strata

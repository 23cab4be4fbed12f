#include "worker/model/model_registry.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/formats/gguf.h"
#include "common/status.h"

namespace strata {
namespace {

struct Registration {
  std::string_view architecture;  // Hugging Face `architectures[0]`
  ModelFactory factory;
};

constexpr Registration kModels[] = {
    {"LlamaForCausalLM", &CreateLlamaModel},
    {"MistralForCausalLM", &CreateLlamaModel},
};

}  // namespace

ModelFactory FindModelFactory(std::string_view architecture) {
  for (const Registration& r : kModels) {
    if (r.architecture == architecture) return r.factory;
  }
  return nullptr;
}

std::vector<std::string> SupportedArchitectures() {
  std::vector<std::string> names;
  for (const Registration& r : kModels) names.emplace_back(r.architecture);
  return names;
}

absl::StatusOr<std::unique_ptr<ModelRunner>> LoadModel(const std::string& path, Backend& backend,
                                                       const ModelLoadOptions& options) {
  ModelContext context;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<WeightSource> weights, OpenWeightSource(path));
  if (const auto* gguf = dynamic_cast<const GgufFile*>(weights.get()); gguf != nullptr) {
    STRATA_ASSIGN_OR_RETURN(context.config, ConfigFromGguf(*gguf));
    context.gguf_names = true;
  } else {
    const std::filesystem::path p(path);
    STRATA_ASSIGN_OR_RETURN(context.config,
                            LoadHfConfig(std::filesystem::is_directory(p) ? p.string()
                                                                          : p.parent_path().string()));
  }
  const ModelFactory factory = FindModelFactory(context.config.architecture);
  if (factory == nullptr) {
    return absl::UnimplementedError(absl::StrCat(
        path, ": architecture '", context.config.architecture, "' is not supported (supported: ",
        absl::StrJoin(SupportedArchitectures(), ", "), ")"));
  }
  context.weights = std::move(weights);
  context.backend = &backend;
  context.options = options;
  if (context.options.layer_end < 0) context.options.layer_end = context.config.num_layers;
  if (context.options.layer_begin < 0 || context.options.layer_begin >= context.options.layer_end ||
      context.options.layer_end > context.config.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer range [", context.options.layer_begin, ", ", context.options.layer_end,
        ") is not inside the model's ", context.config.num_layers, " layers"));
  }
  return factory(context);
}

}  // namespace strata

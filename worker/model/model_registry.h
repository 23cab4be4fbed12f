// The model families this build knows, by Hugging Face `architectures` name (GGUF
// `general.architecture` names are mapped to those when the config is read).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/model/decoder.h"

namespace strata {

absl::Span<const Family* const> Families();

// The family registered for `architecture`, or nullptr.
const Family* FindFamily(std::string_view architecture);

// Opens `path` (HF directory or .gguf): its config, its weights, their naming scheme and its
// family (Unimplemented naming the supported ones when none fits, or when the family refuses
// the config). Without `weights_required`, a directory holding only a config.json opens with
// no weights (enough to plan).
absl::StatusOr<ModelContext> OpenModel(const std::string& path, bool weights_required = true);

}  // namespace strata

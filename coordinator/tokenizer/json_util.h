// Small helpers for reading the Hugging Face JSON files of a model (tokenizer.json,
// tokenizer_config.json, generation_config.json) with Boost.JSON.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "boost/json.hpp"

namespace strata::tokenizer {

// The JSON object in `path`, or nullopt when the file does not exist. InvalidArgument naming
// the file when it is not a JSON object.
absl::StatusOr<std::optional<boost::json::object>> ReadJsonObject(
    const std::filesystem::path& path);

// `value` as a string view when it is a JSON string.
std::optional<std::string_view> JsonString(const boost::json::value* value);

// obj[key] as a string view when present and a string.
std::optional<std::string_view> JsonString(const boost::json::object& obj, std::string_view key);

// obj[key] as a bool when present and a bool, else `absent`.
bool JsonBool(const boost::json::object& obj, std::string_view key, bool absent);

// A token named in tokenizer_config.json: "</s>" or {"content": "</s>", ...}.
std::optional<std::string_view> JsonTokenContent(const boost::json::object& obj,
                                                 std::string_view key);

// Walks one tokenizer.json pipeline component (a normalizer, pre_tokenizer, decoder or
// post_processor): an object with a "type". A "Sequence" is flattened: its items under
// `list_key` are walked in order (nested sequences too); any other component is handed to
// `parse` with its type and `where`, which names the component in errors. A null component
// (absent in tokenizer.json) has no steps.
absl::Status ForEachComponent(
    const boost::json::value& json, const std::string& where, std::string_view list_key,
    absl::FunctionRef<absl::Status(const boost::json::object& obj, const std::string& type,
                                   const std::string& where)>
        parse);

}  // namespace strata::tokenizer

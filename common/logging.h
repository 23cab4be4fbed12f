// Logging goes through spdlog. One process-wide logger, written to stderr so stdout stays free
// for the generated text of `strata generate`.
#pragma once

#include <string>
#include <string_view>

#include "spdlog/spdlog.h"

namespace strata {

// Sets the process log level from a name: trace, debug, info, warn, error, off.
void SetLogLevel(std::string_view level);

// The current level's name (for child processes started with the same level).
std::string GetLogLevelName();

}  // namespace strata

#define STRATA_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define STRATA_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define STRATA_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define STRATA_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)

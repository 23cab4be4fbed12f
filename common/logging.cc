#include "common/logging.h"

#include <memory>
#include <string>

#include "spdlog/sinks/stdout_color_sinks.h"

namespace strata {

void SetLogLevel(std::string_view level) {
  static const bool installed = [] {
    auto logger = spdlog::stderr_color_mt("strata");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    spdlog::set_default_logger(std::move(logger));
    return true;
  }();
  (void)installed;
  spdlog::set_level(spdlog::level::from_str(std::string(level)));
}

std::string GetLogLevelName() {
  const auto name = spdlog::level::to_string_view(spdlog::get_level());
  return std::string(name.data(), name.size());
}

}  // namespace strata

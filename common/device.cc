#include "common/device.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/strings.h"

namespace strata {

const char* DeviceKindName(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::kCpu: return "cpu";
    case DeviceKind::kCuda: return "cuda";
  }
  return "?";
}

absl::StatusOr<DeviceKind> ParseDeviceKind(std::string_view name) {
  for (DeviceKind kind : {DeviceKind::kCpu, DeviceKind::kCuda}) {
    if (name == DeviceKindName(kind)) return kind;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown device kind '", Sv(name), "' (known: cpu, cuda)"));
}

absl::StatusOr<DeviceSpec> ParseDeviceSpec(std::string_view text) {
  const size_t colon = text.find(':');
  DeviceSpec spec;
  auto kind = ParseDeviceKind(text.substr(0, colon));
  if (!kind.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "device '", Sv(text), "': expected cpu, cuda or cuda:N"));
  }
  spec.kind = *kind;
  if (colon == std::string_view::npos) return spec;
  int index = -1;
  if (spec.kind != DeviceKind::kCuda || !absl::SimpleAtoi(Sv(text.substr(colon + 1)), &index) ||
      index < 0 || index > 1024) {
    return absl::InvalidArgumentError(absl::StrCat(
        "device '", Sv(text), "': expected cpu, cuda or cuda:N with N a device index"));
  }
  spec.index = index;
  return spec;
}

}  // namespace strata

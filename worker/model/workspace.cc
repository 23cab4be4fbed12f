#include "worker/model/workspace.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/strings.h"

namespace strata {

void Workspace::Reserve(std::string_view name, int64_t per_row, int64_t rows) {
  Reserve(name, activation_dtype_, per_row, rows);
}

void Workspace::Reserve(std::string_view name, DType dtype, int64_t per_row, int64_t rows) {
  auto [it, inserted] = slots_.try_emplace(std::string(name), Slot{dtype, per_row, rows, {}});
  if (inserted) return;
  Slot& s = it->second;
  STRATA_CHECK(s.dtype == dtype) << "workspace slot " << name << " reserved with two dtypes";
  s.per_row = std::max(s.per_row, per_row);
  s.rows = (s.rows < 0 || rows < 0) ? -1 : std::max(s.rows, rows);
}

absl::Status Workspace::Allocate(Backend& backend, int64_t max_tokens) {
  max_tokens_ = max_tokens;
  bytes_ = 0;
  for (auto& [name, slot] : slots_) {
    const int64_t rows = slot.rows < 0 ? max_tokens : slot.rows;
    auto buffer = backend.Allocate(slot.dtype, {rows, slot.per_row});
    if (!buffer.ok()) {
      return absl::Status(buffer.status().code(),
                          absl::StrCat("workspace '", name, "': ", buffer.status().message()));
    }
    slot.buffer = *std::move(buffer);
    bytes_ += slot.buffer.tensor.Bytes();
  }
  return absl::OkStatus();
}

Tensor Workspace::Get(std::string_view name, Shape shape) const {
  auto it = slots_.find(Sv(name));
  STRATA_CHECK(it != slots_.end()) << "workspace slot " << name << " was never reserved";
  const Slot& s = it->second;
  STRATA_CHECK(NumElements(shape) <= s.buffer.tensor.NumElements())
      << "workspace slot " << name << " holds " << s.buffer.tensor.NumElements()
      << " values, asked for " << ShapeToString(shape);
  return MakeTensor(s.dtype, std::move(shape), s.buffer.tensor.data);
}

}  // namespace strata

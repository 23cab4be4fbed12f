// Workspace: the activation scratch of one runner, allocated once at load for the largest
// step it accepts (no allocation per step). Layers reserve named slots while they are built
// ("q": heads * head_dim values per token); slots are shared by all layers, which run one
// after another, so each slot is sized by its largest reservation.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "worker/backend/backend.h"

namespace strata {

class Workspace {
 public:
  // `dtype` of activation slots (the backend's activation dtype).
  explicit Workspace(DType activation_dtype) : activation_dtype_(activation_dtype) {}

  DType activation_dtype() const { return activation_dtype_; }

  // Slot `name` needs `per_row` values of `dtype` for each of up to `rows` rows (the default,
  // -1, means one row per token of the step).
  void Reserve(std::string_view name, int64_t per_row, int64_t rows = -1);
  void Reserve(std::string_view name, DType dtype, int64_t per_row, int64_t rows = -1);

  // Allocates every slot for steps of up to `max_tokens` tokens.
  absl::Status Allocate(Backend& backend, int64_t max_tokens);
  int64_t max_tokens() const { return max_tokens_; }
  // Bytes allocated.
  int64_t bytes() const { return bytes_; }

  // A view of slot `name` with `shape` (which must fit the slot).
  Tensor Get(std::string_view name, Shape shape) const;

 private:
  struct Slot {
    DType dtype;
    int64_t per_row = 0;
    int64_t rows = -1;  // -1: per token
    Buffer buffer;
  };
  DType activation_dtype_;
  absl::flat_hash_map<std::string, Slot> slots_;
  int64_t max_tokens_ = 0;
  int64_t bytes_ = 0;
};

}  // namespace strata

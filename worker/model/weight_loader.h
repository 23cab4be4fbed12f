// WeightLoader: how layers get their weights, by role and layer, in one of two modes:
//
//  * loading: the tensor is read from the model's WeightSource (its shape checked against what
//    the layer expects, the message naming file, tensor and expected shape), the rank's slice
//    taken zero-copy, and placed on the backend (matrices converted to the requested dtype;
//    vectors as f32);
//  * planning: nothing is read; the loader only counts the bytes the rank would hold, from the
//    file's tensor types when a source is given, else from the config (torch_dtype and
//    quantization_config). The shard planner runs the same layer code this way
//    (footprint.h), so what it plans is what the loader loads.
//
// Names come from the family's NameTable: a role ("wq") maps to a Hugging Face and a GGUF
// pattern, `$0` standing for the layer and `$1` for the expert, without the ".weight" /
// ".bias" suffix.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/formats/weight_source.h"
#include "common/model_config.h"
#include "worker/backend/backend.h"

namespace strata {

// One weight under both naming schemes.
struct WeightName {
  std::string_view hf;
  std::string_view gguf;
};

// A family's weight names by role. Families extend one another's tables.
class NameTable {
 public:
  NameTable(std::initializer_list<std::pair<const std::string_view, WeightName>> entries)
      : names_(entries) {}
  NameTable With(std::initializer_list<std::pair<const std::string_view, WeightName>> more) const;
  // The entry for `role`, or nullptr.
  const WeightName* Find(std::string_view role) const;

 private:
  absl::flat_hash_map<std::string_view, WeightName> names_;
};

// Which part of a tensor this rank loads: all of it, rows [begin, end) or columns [begin, end)
// of its folded matrix.
struct WeightSlice {
  enum Kind { kAll, kRows, kCols } kind = kAll;
  int64_t begin = 0;
  int64_t end = 0;
  static WeightSlice Rows(int64_t b, int64_t e) { return {kRows, b, e}; }
  static WeightSlice Cols(int64_t b, int64_t e) { return {kCols, b, e}; }
};

class WeightLoader {
 public:
  struct Options {
    bool gguf_names = false;
    // Convert matrices to this dtype (nullopt: as stored). Rows that are not a whole number of
    // its blocks fall back to f16.
    std::optional<DType> matrix_dtype;
    // Called after each loaded weight with the bytes loaded so far.
    std::function<void(int64_t)> on_progress;
  };

  // Loading from `source` onto `backend`.
  WeightLoader(const WeightSource& source, Backend& backend, const NameTable& names,
               Options options);
  // Planning: counts bytes only. `source` (optional) gives the stored types.
  WeightLoader(const ModelConfig& config, const WeightSource* source, const NameTable& names,
               Options options);

  bool planning() const { return backend_ == nullptr; }
  bool gguf_names() const { return options_.gguf_names; }
  // Whether the table names `role` for this format.
  bool Names(std::string_view role) const;
  // The tensor name of `role` at `layer` (and `expert`) with `suffix`.
  std::string Name(std::string_view role, int64_t layer, std::string_view suffix = ".weight",
                   int64_t expert = 0) const;
  // Whether the source holds that tensor (false when planning without a source).
  bool Has(std::string_view role, int64_t layer, std::string_view suffix = ".weight") const;

  // What a matrix is, for conversion and for sizing it from a config.
  enum class MatrixKind {
    kLinear,     // converted to the requested dtype; quantized by quantization_config
    kEmbedding,  // embedding and lm_head: converted, but left alone by AWQ / GPTQ / FP8
    kRouter,     // MoE routers: kept as stored
  };
  // A matmul weight of stored shape `full` ([out, in]), this rank's `slice` of it.
  absl::StatusOr<Weight> Matrix(std::string_view role, int64_t layer, const Shape& full,
                                WeightSlice slice = {}, MatrixKind kind = MatrixKind::kLinear);
  // Expert `expert` of `role`: its own tensor (HF: `$1` in the name) or its [rows, cols] part of
  // a stacked [num_experts, rows, cols] tensor (GGUF), then `slice` of that.
  absl::StatusOr<Weight> ExpertMatrix(std::string_view role, int64_t layer, int64_t expert,
                                      int64_t num_experts, const Shape& per_expert,
                                      WeightSlice slice = {});
  // An f32 vector (norm weights, biases, tables): `role` + `suffix`, shape `full`, `slice`,
  // with `offset` added to every value (Gemma's (1 + w) norms).
  absl::StatusOr<Weight> Vector(std::string_view role, int64_t layer, const Shape& full,
                                std::string_view suffix = ".weight", WeightSlice slice = {},
                                float offset = 0.0f);

  // The stored tensor of `role` at `layer` as it is in the file (host memory), shape checked;
  // for values the loader itself uses (RoPE factors). FailedPrecondition when planning
  // without a source.
  absl::StatusOr<TensorView> HostTensor(std::string_view role, int64_t layer, const Shape& full,
                                        std::string_view suffix = ".weight") const;
  // Rows [begin, end) of the stored [rows, cols] matrix `role`, transposed into an f32
  // [cols, end - begin] weight of its own (MLA's absorbed key projection).
  absl::StatusOr<Weight> TransposedRows(std::string_view role, int64_t layer, const Shape& full,
                                        int64_t begin, int64_t end);
  // Places a table computed on the host (f32) on the backend.
  absl::StatusOr<Weight> Table(const std::vector<float>& values);

  // Bytes this rank holds so far, and how many of them are routed experts' (of which one
  // token's decode reads only its chosen experts).
  int64_t bytes() const { return bytes_; }
  int64_t expert_bytes() const { return expert_bytes_; }

 private:
  struct Resolved {
    std::string tensor;
    TensorView view;  // the rank's slice (planning without a source: shape only)
  };
  absl::StatusOr<Resolved> Resolve(std::string_view role, int64_t layer, int64_t expert,
                                   const Shape& full, WeightSlice slice, int64_t stacked,
                                   std::string_view suffix) const;
  absl::StatusOr<Weight> Place(const Resolved& r, bool matrix, float offset = 0.0f,
                               MatrixKind kind = MatrixKind::kLinear);
  // Bytes of a [rows, cols] matrix as the config says it is stored (planning, no source).
  int64_t ConfigMatrixBytes(int64_t rows, int64_t cols) const;

  const WeightSource* source_;
  Backend* backend_;
  const ModelConfig* config_ = nullptr;  // planning only
  const NameTable& names_;
  Options options_;
  int64_t bytes_ = 0;
  int64_t expert_bytes_ = 0;
};

}  // namespace strata

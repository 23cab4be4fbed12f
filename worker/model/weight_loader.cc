#include "worker/model/weight_loader.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status.h"
#include "common/strings.h"

namespace strata {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The dtype a checkpoint's config says its unquantized weights are stored in.
DType ConfigDType(const ModelConfig& c) {
  if (c.torch_dtype == "float32") return DType::kF32;
  if (c.torch_dtype == "float16") return DType::kF16;
  return DType::kBF16;
}

}  // namespace

NameTable NameTable::With(
    std::initializer_list<std::pair<const std::string_view, WeightName>> more) const {
  NameTable t = *this;
  for (const auto& [role, name] : more) t.names_[role] = name;
  return t;
}

const WeightName* NameTable::Find(std::string_view role) const {
  auto it = names_.find(role);
  return it == names_.end() ? nullptr : &it->second;
}

WeightLoader::WeightLoader(const WeightSource& source, Backend& backend, const NameTable& names,
                           Options options)
    : source_(&source), backend_(&backend), names_(names), options_(std::move(options)) {}

WeightLoader::WeightLoader(const ModelConfig& config, const WeightSource* source,
                           const NameTable& names, Options options)
    : source_(source), backend_(nullptr), config_(&config), names_(names),
      options_(std::move(options)) {}

bool WeightLoader::Names(std::string_view role) const {
  const WeightName* n = names_.Find(role);
  return n != nullptr && !(options_.gguf_names ? n->gguf : n->hf).empty();
}

std::string WeightLoader::Name(std::string_view role, int64_t layer, std::string_view suffix,
                               int64_t expert) const {
  const WeightName* n = names_.Find(role);
  if (n == nullptr) return absl::StrCat("<no name for ", Sv(role), ">");
  const std::string_view pattern = options_.gguf_names ? n->gguf : n->hf;
  return absl::StrCat(absl::StrReplaceAll(Sv(pattern), {{"$0", absl::StrCat(layer)},
                                                        {"$1", absl::StrCat(expert)}}),
                      Sv(suffix));
}

bool WeightLoader::Has(std::string_view role, int64_t layer, std::string_view suffix) const {
  return source_ != nullptr && Names(role) && source_->Has(Name(role, layer, suffix));
}

absl::StatusOr<WeightLoader::Resolved> WeightLoader::Resolve(std::string_view role,
                                                             int64_t layer, int64_t expert,
                                                             const Shape& full,
                                                             WeightSlice slice, int64_t stacked,
                                                             std::string_view suffix) const {
  if (!Names(role)) {
    return absl::InternalError(absl::StrCat("no ", options_.gguf_names ? "GGUF" : "Hugging Face",
                                            " name for weight role '", Sv(role), "'"));
  }
  Resolved r;
  r.tensor = Name(role, layer, suffix, expert);
  const std::string where = source_ != nullptr ? source_->path() : std::string("model");
  // The stored tensor: the expected shape, or [stacked, rows, cols] holding every expert.
  Shape stored = full;
  if (stacked > 0) stored.insert(stored.begin(), stacked);
  if (source_ != nullptr) {
    STRATA_ASSIGN_OR_RETURN(r.view, source_->Get(r.tensor));
    if (r.view.shape != stored) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": tensor '", r.tensor, "' has shape ",
                                                     ShapeToString(r.view.shape), ", expected ",
                                                     ShapeToString(stored)));
    }
  } else {
    r.view.dtype = ConfigDType(*config_);
    r.view.shape = stored;
  }
  if (stacked > 0) {
    const int64_t rows = full.size() > 1 ? full[0] : 1;
    if (source_ != nullptr) {
      STRATA_ASSIGN_OR_RETURN(r.view, r.view.SliceRows(expert * rows, (expert + 1) * rows));
    }
    r.view.shape = full;
  }
  const bool vector_rows = full.size() == 1 && slice.kind == WeightSlice::kRows;
  if (vector_rows && source_ != nullptr) {  // a vector's elements as rows of one
    if (GetDTypeInfo(r.view.dtype).block_elems != 1) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": tensor '", r.tensor,
                                                     "' is block-quantized and cannot be split"));
    }
    r.view.shape = {full[0], 1};
    r.view.row_stride_bytes = r.view.RowBytes();
  }
  if (slice.kind != WeightSlice::kAll) {
    const int64_t cols = full.back();
    if (source_ != nullptr) {
      auto part = slice.kind == WeightSlice::kRows ? r.view.SliceRows(slice.begin, slice.end)
                                                   : r.view.SliceCols(slice.begin, slice.end);
      if (!part.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": tensor '", r.tensor,
                                                       "' cannot be split for tensor "
                                                       "parallelism: ", part.status().message()));
      }
      r.view = *part;
    } else if (slice.kind == WeightSlice::kRows) {
      r.view.shape = {slice.end - slice.begin, cols};
    } else {
      r.view.shape = {r.view.NumElements() / cols, slice.end - slice.begin};
    }
  }
  if (vector_rows) {
    r.view.shape = {slice.end - slice.begin};
    r.view.row_stride_bytes = r.view.RowBytes();
  }
  return r;
}

int64_t WeightLoader::ConfigMatrixBytes(int64_t rows, int64_t cols) const {
  const QuantConfig& q = config_->quant;
  switch (q.method) {
    case QuantMethod::kNone:
      break;
    case QuantMethod::kFp8:  // one byte per value and an f32 scale per output row
      return rows * cols + rows * 4;
    case QuantMethod::kAwq:
    case QuantMethod::kGptq: {  // `bits` per value; an f16 scale and a zero point per group
      const int64_t groups = rows * CeilDiv(cols, q.group_size);
      return rows * cols * q.bits / 8 + groups * (2 + q.bits / 8 + 1);
    }
  }
  return ElementsToBytes(ConfigDType(*config_), rows * cols);
}

absl::StatusOr<Weight> WeightLoader::Place(const Resolved& r, bool matrix, float offset,
                                           MatrixKind kind) {
  DType dtype = DType::kF32;
  if (matrix) {
    dtype = kind == MatrixKind::kRouter ? r.view.dtype
                                        : options_.matrix_dtype.value_or(r.view.dtype);
    if (!IsBlockAligned(dtype, r.view.Cols())) dtype = DType::kF16;
  }
  if (planning()) {
    Weight w;
    w.view.dtype = dtype;
    w.view.shape = r.view.shape;
    // Without a file, linear weights are what the config says (quantized or not).
    const bool as_config = matrix && source_ == nullptr && kind == MatrixKind::kLinear &&
                           !options_.matrix_dtype;
    bytes_ += as_config ? ConfigMatrixBytes(r.view.Rows(), r.view.Cols())
                        : ElementsToBytes(dtype, r.view.NumElements());
    return w;
  }
  source_->Prefetch(r.view);  // only this rank's bytes: the mapping reads nothing ahead
  absl::StatusOr<Weight> weight;
  if (offset != 0.0f) {
    std::vector<float> values(r.view.NumElements());
    for (int64_t row = 0; row < r.view.Rows(); ++row) {
      DequantizeRow(r.view.dtype, r.view.Row(row), values.data() + row * r.view.Cols(),
                    r.view.Cols());
    }
    for (float& v : values) v += offset;
    weight = backend_->UploadWeight(DType::kF32, r.view.shape, values.data());
  } else {
    weight = backend_->LoadWeight(r.view, dtype);
  }
  if (!weight.ok()) {
    return absl::Status(weight.status().code(),
                        absl::StrCat(source_->path(), ": tensor '", r.tensor, "': ",
                                     weight.status().message()));
  }
  bytes_ += weight->Bytes();
  if (options_.on_progress) options_.on_progress(bytes_);
  return weight;
}

absl::StatusOr<Weight> WeightLoader::Matrix(std::string_view role, int64_t layer,
                                            const Shape& full, WeightSlice slice,
                                            MatrixKind kind) {
  STRATA_ASSIGN_OR_RETURN(Resolved r, Resolve(role, layer, 0, full, slice, 0, ".weight"));
  return Place(r, /*matrix=*/true, 0.0f, kind);
}

absl::StatusOr<Weight> WeightLoader::ExpertMatrix(std::string_view role, int64_t layer,
                                                  int64_t expert, int64_t num_experts,
                                                  const Shape& per_expert, WeightSlice slice) {
  const WeightName* n = names_.Find(role);
  const std::string_view pattern =
      n == nullptr ? std::string_view() : (options_.gguf_names ? n->gguf : n->hf);
  const bool stacked = pattern.find("$1") == std::string_view::npos;
  STRATA_ASSIGN_OR_RETURN(
      Resolved r, Resolve(role, layer, expert, per_expert, slice, stacked ? num_experts : 0,
                          ".weight"));
  const int64_t before = bytes_;
  STRATA_ASSIGN_OR_RETURN(Weight w, Place(r, /*matrix=*/true));
  expert_bytes_ += bytes_ - before;
  return w;
}

absl::StatusOr<Weight> WeightLoader::Vector(std::string_view role, int64_t layer,
                                            const Shape& full, std::string_view suffix,
                                            WeightSlice slice, float offset) {
  STRATA_ASSIGN_OR_RETURN(Resolved r, Resolve(role, layer, 0, full, slice, 0, suffix));
  return Place(r, /*matrix=*/false, offset);
}

absl::StatusOr<TensorView> WeightLoader::HostTensor(std::string_view role, int64_t layer,
                                                    const Shape& full,
                                                    std::string_view suffix) const {
  if (source_ == nullptr) {
    return absl::FailedPreconditionError("no weights to read while planning");
  }
  STRATA_ASSIGN_OR_RETURN(Resolved r, Resolve(role, layer, 0, full, {}, 0, suffix));
  return r.view;
}

absl::StatusOr<Weight> WeightLoader::Table(const std::vector<float>& values) {
  const int64_t n = static_cast<int64_t>(values.size());
  if (planning()) {
    bytes_ += n * 4;
    Weight w;
    w.view.shape = {n};
    return w;
  }
  STRATA_ASSIGN_OR_RETURN(Weight w, backend_->UploadWeight(DType::kF32, {n}, values.data()));
  bytes_ += w.Bytes();
  return w;
}

absl::StatusOr<Weight> WeightLoader::TransposedRows(std::string_view role, int64_t layer,
                                                    const Shape& full, int64_t begin,
                                                    int64_t end) {
  STRATA_ASSIGN_OR_RETURN(Resolved r,
                          Resolve(role, layer, 0, full, WeightSlice::Rows(begin, end), 0, ".weight"));
  const int64_t rows = end - begin, cols = full.back();
  if (planning()) {
    bytes_ += rows * cols * 4;
    Weight w;
    w.view.shape = {cols, rows};
    return w;
  }
  std::vector<float> row(cols), out(rows * cols);
  for (int64_t i = 0; i < rows; ++i) {
    DequantizeRow(r.view.dtype, r.view.Row(i), row.data(), cols);
    for (int64_t j = 0; j < cols; ++j) out[j * rows + i] = row[j];
  }
  STRATA_ASSIGN_OR_RETURN(Weight w, backend_->UploadWeight(DType::kF32, {cols, rows}, out.data()));
  bytes_ += w.Bytes();
  if (options_.on_progress) options_.on_progress(bytes_);
  return w;
}

}  // namespace strata

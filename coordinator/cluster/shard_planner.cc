#include "coordinator/cluster/shard_planner.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"

namespace strata {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Bytes of a [rows, cols] linear weight as stored. fp8: one byte per value plus an f32 scale
// per output row; awq/gptq: `bits` per value plus an f16 scale and a packed zero point per
// group of `group_size` input values.
int64_t LinearBytes(const ModelConfig& c, int64_t rows, int64_t cols) {
  switch (c.quant.method) {
    case QuantMethod::kNone:
      return rows * cols * c.ParamBytes();
    case QuantMethod::kFp8:
      return rows * cols + rows * 4;
    case QuantMethod::kAwq:
    case QuantMethod::kGptq: {
      const int64_t groups = rows * CeilDiv(cols, c.quant.group_size);
      return rows * cols * c.quant.bits / 8 + groups * (2 + c.quant.bits / 8 + 1);
    }
  }
  return 0;
}

// The TP split of one model: per-rank sizes.
struct TpShape {
  int64_t q_heads;
  int64_t kv_heads;
  int64_t mlp_width;     // dense MLP columns per rank
  int64_t expert_width;  // expert FFN columns per rank
  int64_t vocab_rows;    // embedding / lm_head rows per rank
};

absl::StatusOr<TpShape> SplitForTp(const ModelConfig& c, int64_t tp) {
  auto refuse = [&](const std::string& what) {
    return absl::FailedPreconditionError(
        absl::StrCat("tensor parallel size ", tp, " does not divide ", what));
  };
  if (c.num_heads % tp != 0) return refuse(absl::StrCat(c.num_heads, " attention heads"));
  if (c.num_kv_heads % tp != 0 && tp % c.num_kv_heads != 0) {
    return refuse(absl::StrCat(c.num_kv_heads, " KV heads (nor is it a multiple of them)"));
  }
  if (c.intermediate_size % tp != 0) {
    return refuse(absl::StrCat("the MLP width ", c.intermediate_size));
  }
  if (c.IsMoe() && c.moe.expert_intermediate_size % tp != 0) {
    return refuse(absl::StrCat("the expert width ", c.moe.expert_intermediate_size));
  }
  const int64_t group = c.quant.group_size;
  if (group > 0 && ((c.intermediate_size / tp) % group != 0 ||
                    (c.num_heads / tp * c.head_dim) % group != 0)) {
    return refuse(absl::StrCat("the row-parallel inputs into whole quantization groups of ", group));
  }
  TpShape s;
  s.q_heads = c.num_heads / tp;
  s.kv_heads = std::max<int64_t>(1, c.num_kv_heads / tp);
  s.mlp_width = c.intermediate_size / tp;
  s.expert_width = c.IsMoe() ? c.moe.expert_intermediate_size / tp : 0;
  s.vocab_rows = CeilDiv(c.vocab_size, tp);
  return s;
}

// Bytes of decoder layer `layer` on one rank.
int64_t LayerBytes(const ModelConfig& c, const TpShape& s, int64_t layer) {
  const int64_t h = c.hidden_size, hd = c.head_dim;
  int64_t bytes = 2 * h * c.ParamBytes();  // the two norms, replicated
  bytes += LinearBytes(c, s.q_heads * hd, h) + LinearBytes(c, h, s.q_heads * hd);
  bytes += 2 * LinearBytes(c, s.kv_heads * hd, h);
  if (c.IsMoe() && layer >= c.moe.first_dense_layers) {
    const int64_t experts = c.moe.num_experts + c.moe.num_shared_experts;
    bytes += experts * (2 * LinearBytes(c, s.expert_width, h) + LinearBytes(c, h, s.expert_width));
    bytes += c.moe.num_experts * h * c.ParamBytes();  // router, replicated
  } else {
    bytes += 2 * LinearBytes(c, s.mlp_width, h) + LinearBytes(c, h, s.mlp_width);
  }
  return bytes;
}

// The embedding or lm_head slice of one rank (never quantized by the supported methods).
int64_t VocabBytes(const ModelConfig& c, const TpShape& s) {
  return s.vocab_rows * c.hidden_size * c.ParamBytes();
}

// Splits layers into `pp` contiguous, non-empty stages minimising the largest stage's bytes
// (dynamic programming over split points). Returns the first layer of each stage.
std::vector<int64_t> BalanceStages(const std::vector<int64_t>& layer_bytes, int64_t first_extra,
                                   int64_t last_extra, int64_t pp) {
  const int64_t n = static_cast<int64_t>(layer_bytes.size());
  std::vector<int64_t> prefix(n + 1, 0);
  for (int64_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + layer_bytes[i];
  auto stage_cost = [&](int64_t stage, int64_t begin, int64_t end) {
    return prefix[end] - prefix[begin] + (stage == 0 ? first_extra : 0) +
           (stage == pp - 1 ? last_extra : 0);
  };
  constexpr int64_t kInf = std::numeric_limits<int64_t>::max();
  // best[s][i]: minimal max cost of putting layers [0, i) into stages 0..s-1.
  std::vector<std::vector<int64_t>> best(pp + 1, std::vector<int64_t>(n + 1, kInf));
  std::vector<std::vector<int64_t>> split(pp + 1, std::vector<int64_t>(n + 1, 0));
  best[0][0] = 0;
  for (int64_t s = 1; s <= pp; ++s) {
    for (int64_t i = s; i <= n - (pp - s); ++i) {
      for (int64_t j = s - 1; j < i; ++j) {
        if (best[s - 1][j] == kInf) continue;
        const int64_t cost = std::max(best[s - 1][j], stage_cost(s - 1, j, i));
        if (cost < best[s][i]) {
          best[s][i] = cost;
          split[s][i] = j;
        }
      }
    }
  }
  std::vector<int64_t> begins(pp);
  for (int64_t s = pp, i = n; s >= 1; --s) {
    begins[s - 1] = split[s][i];
    i = split[s][i];
  }
  return begins;
}

// The plan, whether or not it fits (kv_blocks may come out negative).
absl::StatusOr<ShardPlan> Layout(const ModelConfig& c, const ClusterSpec& cluster,
                                 const PlanOptions& options) {
  const int64_t tp = cluster.devices_per_node, pp = cluster.nodes;
  STRATA_ASSIGN_OR_RETURN(const TpShape s, SplitForTp(c, tp));
  if (pp > c.num_layers) {
    return absl::FailedPreconditionError(absl::StrCat(
        "pipeline parallel size ", pp, " exceeds the model's ", c.num_layers, " layers"));
  }
  std::vector<int64_t> layer_bytes(c.num_layers);
  for (int64_t l = 0; l < c.num_layers; ++l) layer_bytes[l] = LayerBytes(c, s, l);
  const int64_t embed = VocabBytes(c, s);
  // The last stage holds the final norm and lm_head; with tied embeddings and one stage the
  // lm_head is the embedding itself.
  const int64_t head = c.hidden_size * c.ParamBytes() + (c.tie_word_embeddings && pp == 1 ? 0 : embed);
  const std::vector<int64_t> begins = BalanceStages(layer_bytes, embed, head, pp);

  ShardPlan plan;
  plan.tp = tp;
  plan.pp = pp;
  plan.kv_replication = std::max<int64_t>(1, tp / c.num_kv_heads);
  plan.total_weight_bytes = ModelWeightBytes(c);
  const double usable = static_cast<double>(cluster.memory_per_device) * cluster.memory_utilization;
  plan.kv_tokens = std::numeric_limits<int64_t>::max();
  for (int64_t stage = 0; stage < pp; ++stage) {
    const int64_t begin = begins[stage];
    const int64_t end = stage + 1 < pp ? begins[stage + 1] : c.num_layers;
    int64_t weights = (stage == 0 ? embed : 0) + (stage == pp - 1 ? head : 0);
    for (int64_t l = begin; l < end; ++l) weights += layer_bytes[l];
    const int64_t kv_per_token = 2 * (end - begin) * s.kv_heads * c.head_dim * options.kv_dtype_bytes;
    const double free = usable - static_cast<double>(cluster.activation_reserve + weights);
    const int64_t blocks = static_cast<int64_t>(
        std::floor(free / static_cast<double>(kv_per_token * options.kv_block_size)));
    for (int64_t t = 0; t < tp; ++t) {
      RankPlan r;
      r.rank = stage * tp + t;
      r.node = stage;
      r.stage = stage;
      r.tp_rank = t;
      r.layer_begin = begin;
      r.layer_end = end;
      r.q_heads = s.q_heads;
      r.kv_heads = s.kv_heads;
      if (stage == 0 || stage == pp - 1) {
        r.vocab_begin = std::min(c.vocab_size, t * s.vocab_rows);
        r.vocab_end = std::min(c.vocab_size, (t + 1) * s.vocab_rows);
      }
      r.weight_bytes = weights;
      r.kv_bytes_per_token = kv_per_token;
      r.kv_blocks = blocks;
      plan.ranks.push_back(r);
    }
    plan.kv_tokens = std::min(plan.kv_tokens, blocks * options.kv_block_size);
  }
  return plan;
}

}  // namespace

int64_t ModelWeightBytes(const ModelConfig& c) {
  const TpShape s{c.num_heads, c.num_kv_heads, c.intermediate_size,
                  c.IsMoe() ? c.moe.expert_intermediate_size : 0, c.vocab_size};
  int64_t bytes = VocabBytes(c, s) * (c.tie_word_embeddings ? 1 : 2) + c.hidden_size * c.ParamBytes();
  for (int64_t l = 0; l < c.num_layers; ++l) bytes += LayerBytes(c, s, l);
  return bytes;
}

absl::StatusOr<ShardPlan> PlanShards(const ModelConfig& config, const ClusterSpec& cluster,
                                     const PlanOptions& options) {
  if (cluster.nodes <= 0 || cluster.devices_per_node <= 0 || cluster.memory_per_device <= 0 ||
      !(cluster.memory_utilization > 0 && cluster.memory_utilization <= 1)) {
    return absl::InvalidArgumentError(
        "a cluster needs nodes, devices per node and memory per device > 0, and a memory "
        "utilization in (0, 1]");
  }
  const int64_t need_tokens =
      options.min_kv_tokens > 0 ? options.min_kv_tokens : config.max_position_embeddings;
  STRATA_ASSIGN_OR_RETURN(ShardPlan plan, Layout(config, cluster, options));
  if (plan.kv_tokens >= need_tokens) return plan;

  // Say what would fit: more nodes of this kind, or bigger devices for this layout.
  int64_t worst = 0;
  for (const RankPlan& r : plan.ranks) {
    worst = std::max(worst, r.weight_bytes + r.kv_bytes_per_token * need_tokens);
  }
  const int64_t needed_memory = static_cast<int64_t>(
      std::ceil(static_cast<double>(worst + cluster.activation_reserve) / cluster.memory_utilization));
  std::string alternative;
  for (int64_t nodes = cluster.nodes + 1; nodes <= std::min<int64_t>(64, config.num_layers); ++nodes) {
    ClusterSpec bigger = cluster;
    bigger.nodes = nodes;
    absl::StatusOr<ShardPlan> p = Layout(config, bigger, options);
    if (p.ok() && p->kv_tokens >= need_tokens) {
      alternative = absl::StrCat("it fits on ", nodes, " nodes x ", cluster.devices_per_node,
                                 " (TP", cluster.devices_per_node, " x PP", nodes, "), or ");
      break;
    }
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "the model (", FormatBytes(plan.total_weight_bytes), " of weights) does not fit on ",
      cluster.nodes, " node(s) x ", cluster.devices_per_node, " device(s) of ",
      FormatBytes(cluster.memory_per_device), " (TP", plan.tp, " x PP", plan.pp,
      ") with a KV cache of ", need_tokens, " tokens: a rank needs ", FormatBytes(needed_memory),
      "; ", alternative, "on devices with at least ", FormatBytes(needed_memory)));
}

absl::StatusOr<int64_t> ParseByteSize(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  const std::string number(text.substr(0, i));
  std::string unit(text.substr(i));
  unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
  for (char& ch : unit) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  char* end = nullptr;
  const double value = number.empty() ? -1 : std::strtod(number.c_str(), &end);
  struct Unit {
    const char* name;
    double scale;
  };
  static constexpr Unit kUnits[] = {{"", 1},        {"b", 1},       {"kib", 1024.0},
                                    {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1099511627776.0},
                                    {"kb", 1e3},     {"mb", 1e6},    {"gb", 1e9},
                                    {"tb", 1e12},    {"k", 1024.0},  {"m", 1 << 20},
                                    {"g", 1 << 30},  {"t", 1099511627776.0}};
  for (const Unit& u : kUnits) {
    if (unit == u.name && value > 0 && end != nullptr && *end == '\0') {
      return static_cast<int64_t>(value * u.scale);
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("cannot read '", std::string(text),
                                                 "' as a size (e.g. 80GiB, 80GB, 512MiB)"));
}

std::string FormatBytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1099511627776.0) return absl::StrFormat("%.2f TiB", b / 1099511627776.0);
  if (b >= 1 << 30) return absl::StrFormat("%.1f GiB", b / (1 << 30));
  if (b >= 1 << 20) return absl::StrFormat("%.1f MiB", b / (1 << 20));
  return absl::StrFormat("%d B", bytes);
}

std::string ShardPlan::Explain(const ModelConfig& c, const ClusterSpec& cluster) const {
  std::string out = absl::StrFormat(
      "%s: %d layers, %d/%d heads, hidden %d, vocab %d%s; %s of weights\n", c.architecture,
      c.num_layers, c.num_heads, c.num_kv_heads, c.hidden_size, c.vocab_size,
      c.IsMoe() ? absl::StrFormat(", %d experts (top-%d)", c.moe.num_experts, c.moe.experts_per_token)
                : std::string(),
      FormatBytes(total_weight_bytes));
  absl::StrAppendFormat(&out, "cluster: %d node(s) x %d device(s) of %s, %.0f%% usable\n",
                        cluster.nodes, cluster.devices_per_node,
                        FormatBytes(cluster.memory_per_device), cluster.memory_utilization * 100);
  absl::StrAppendFormat(&out, "plan: TP%d x PP%d%s; KV cache for %d tokens\n", tp, pp,
                        kv_replication > 1
                            ? absl::StrFormat(" (each KV head replicated on %d ranks)", kv_replication)
                            : std::string(),
                        kv_tokens);
  out += "stage  node  layers      q/kv heads  vocab rows        weights/rank  KV blocks/rank\n";
  for (const RankPlan& r : ranks) {
    if (r.tp_rank != 0) continue;
    const std::string vocab = r.vocab_end > r.vocab_begin
                                  ? absl::StrFormat("%d x %d", r.vocab_end - r.vocab_begin, tp)
                                  : std::string("-");
    const std::string layers = absl::StrFormat("[%d, %d)", r.layer_begin, r.layer_end);
    const std::string heads = absl::StrFormat("%d/%d", r.q_heads, r.kv_heads);
    absl::StrAppendFormat(&out, "%-6d %-5d %-11s %-11s %-17s %-13s %d\n", r.stage, r.node, layers,
                          heads, vocab, FormatBytes(r.weight_bytes), r.kv_blocks);
  }
  return out;
}

}  // namespace strata

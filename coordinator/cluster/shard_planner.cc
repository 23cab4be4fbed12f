#include "coordinator/cluster/shard_planner.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/byte_size.h"
#include "common/status.h"
#include "worker/model/kv_cache.h"
#include "worker/model/model_registry.h"
#include "worker/model/tp_split.h"

namespace strata {
namespace {

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
absl::StatusOr<ShardPlan> Layout(const ModelConfig& c, const ModelFootprint& f,
                                 const ClusterSpec& cluster, const PlanOptions& options) {
  const int64_t tp = cluster.devices_per_node, pp = cluster.nodes;
  if (f.tp != tp) {
    return absl::InvalidArgumentError(absl::StrCat("the footprint is for TP ", f.tp,
                                                   ", the cluster has ", tp, " devices per node"));
  }
  if (pp > c.num_layers) {
    return absl::FailedPreconditionError(absl::StrCat(
        "pipeline parallel size ", pp, " exceeds the model's ", c.num_layers, " layers"));
  }
  // The last stage holds the final norm and lm_head; alone, a tied head loads its own copy of
  // the embedding slice.
  const int64_t head = pp == 1 ? f.last_bytes_with_embedding : f.last_bytes_alone;
  const std::vector<int64_t> begins = BalanceStages(f.layer_bytes, f.first_bytes, head, pp);
  std::vector<TpLayout> layouts;
  for (int64_t t = 0; t < tp; ++t) {
    STRATA_ASSIGN_OR_RETURN(TpLayout l, MakeTpLayout(c, static_cast<int>(t),
                                                     static_cast<int>(tp), f.expert_parallel));
    layouts.push_back(l);
  }

  ShardPlan plan;
  plan.tp = tp;
  plan.pp = pp;
  plan.kv_replication = std::max<int64_t>(1, tp / c.num_kv_heads);
  plan.expert_parallel = f.expert_parallel;
  plan.total_weight_bytes = f.total_bytes;
  const double usable = static_cast<double>(cluster.memory_per_device) * cluster.memory_utilization;
  plan.kv_tokens = std::numeric_limits<int64_t>::max();
  for (int64_t stage = 0; stage < pp; ++stage) {
    const int64_t begin = begins[stage];
    const int64_t end = stage + 1 < pp ? begins[stage + 1] : c.num_layers;
    int64_t weights = (stage == 0 ? f.first_bytes : 0) + (stage == pp - 1 ? head : 0);
    int64_t kv_per_token = 0;
    for (int64_t l = begin; l < end; ++l) {
      weights += f.layer_bytes[l];
      kv_per_token +=
          KvBytesPerToken(f.kv_elements_per_token[l], f.kv_rows_per_token[l], cluster.kv_dtype);
    }
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
      r.q_heads = layouts[t].q_heads.size();
      r.kv_heads = layouts[t].kv_heads.size();
      if (stage == 0 || stage == pp - 1) {
        r.vocab_begin = layouts[t].vocab.begin;
        r.vocab_end = layouts[t].vocab.end;
      }
      r.expert_begin = layouts[t].experts.begin;
      r.expert_end = layouts[t].experts.end;
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

absl::StatusOr<ShardPlan> PlanShards(const ModelConfig& config, const ModelFootprint& footprint,
                                     const ClusterSpec& cluster, const PlanOptions& options) {
  if (cluster.nodes <= 0 || cluster.devices_per_node <= 0 || cluster.memory_per_device <= 0 ||
      !(cluster.memory_utilization > 0 && cluster.memory_utilization <= 1)) {
    return absl::InvalidArgumentError(
        "a cluster needs nodes, devices per node and memory per device > 0, and a memory "
        "utilization in (0, 1]");
  }
  const int64_t need_tokens =
      options.min_kv_tokens > 0 ? options.min_kv_tokens : config.max_position_embeddings;
  STRATA_ASSIGN_OR_RETURN(ShardPlan plan, Layout(config, footprint, cluster, options));
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
    absl::StatusOr<ShardPlan> p = Layout(config, footprint, bigger, options);
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

absl::StatusOr<ShardPlan> PlanModel(const std::string& path, const ClusterSpec& cluster,
                                    const PlanOptions& options, const FootprintOptions& footprint) {
  STRATA_ASSIGN_OR_RETURN(ModelContext context, OpenModel(path, /*weights_required=*/false));
  FootprintOptions f = footprint;
  f.tp = static_cast<int>(cluster.devices_per_node);
  STRATA_ASSIGN_OR_RETURN(ModelFootprint fp, ComputeFootprint(context, f));
  return PlanShards(context.config, fp, cluster, options);
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
  if (c.IsMoe()) {
    if (expert_parallel) {
      out += "experts: spread over each stage's ranks (expert parallel):";
      for (const RankPlan& r : ranks) {
        if (r.stage != 0) continue;
        absl::StrAppendFormat(&out, " TP rank %d [%d, %d)", r.tp_rank, r.expert_begin, r.expert_end);
      }
      out += "\n";
    } else {
      absl::StrAppendFormat(&out, "experts: every rank holds all %d, 1/%d of each one's width\n",
                            c.moe.num_experts, tp);
    }
  }
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

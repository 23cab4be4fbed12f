#include "worker/backend/cpu_moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

namespace strata {
namespace {

// Indices of the `k` largest values of `scores`, descending, lower index first on ties.
std::vector<int32_t> TopK(const std::vector<float>& scores, int64_t k,
                          const std::vector<bool>* allowed = nullptr) {
  std::vector<int32_t> ids;
  for (int32_t i = 0; i < static_cast<int32_t>(scores.size()); ++i) {
    if (allowed == nullptr || (*allowed)[i]) ids.push_back(i);
  }
  const int64_t n = std::min<int64_t>(k, static_cast<int64_t>(ids.size()));
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int32_t a, int32_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  ids.resize(n);
  return ids;
}

}  // namespace

void RouteExperts(const Tensor& logits, const MoeRouting& r, const Tensor& ids,
                  const Tensor& weights) {
  const int64_t tokens = logits.Rows(), e = r.num_experts;
  const float* bias =
      r.correction_bias != nullptr ? reinterpret_cast<const float*>(r.correction_bias->view.data)
                                   : nullptr;
  std::vector<float> probs(e), choose(e);
  for (int64_t t = 0; t < tokens; ++t) {
    const float* l = logits.As<float>() + t * e;
    if (r.scoring == MoeRouting::Scoring::kSoftmax) {
      const float max = *std::max_element(l, l + e);
      float sum = 0.0f;
      for (int64_t i = 0; i < e; ++i) sum += probs[i] = std::exp(l[i] - max);
      for (float& p : probs) p /= sum;
    } else {
      for (int64_t i = 0; i < e; ++i) probs[i] = 1.0f / (1.0f + std::exp(-l[i]));
    }
    for (int64_t i = 0; i < e; ++i) choose[i] = probs[i] + (bias != nullptr ? bias[i] : 0.0f);
    std::vector<bool> allowed(e, true);
    if (r.num_groups > 1) {
      // A group's score: its best expert (softmax, DeepSeek-V2), or the sum of its best two
      // (sigmoid, DeepSeek-V3).
      const int64_t per_group = e / r.num_groups;
      std::vector<float> group_scores(r.num_groups);
      for (int64_t g = 0; g < r.num_groups; ++g) {
        std::vector<float> members(choose.begin() + g * per_group,
                                   choose.begin() + (g + 1) * per_group);
        std::sort(members.begin(), members.end(), std::greater<float>());
        group_scores[g] = r.scoring == MoeRouting::Scoring::kSoftmax
                              ? members[0]
                              : members[0] + (per_group > 1 ? members[1] : 0.0f);
      }
      std::fill(allowed.begin(), allowed.end(), false);
      for (int32_t g : TopK(group_scores, r.topk_groups)) {
        std::fill_n(allowed.begin() + g * per_group, per_group, true);
      }
    }
    const std::vector<int32_t> chosen = TopK(choose, r.top_k, &allowed);
    float total = 0.0f;
    for (int32_t id : chosen) total += probs[id];
    for (int64_t j = 0; j < r.top_k; ++j) {
      const int32_t id = chosen[j];
      float w = probs[id];
      if (r.renormalize && total > 0.0f) w /= total;
      ids.As<int32_t>()[t * r.top_k + j] = id;
      weights.As<float>()[t * r.top_k + j] = w * r.routed_scale;
    }
  }
}

void RunExperts(Backend& backend, const Tensor& x, const Tensor& ids, const Tensor& weights,
                const ExpertWeights& experts, const Tensor& y) {
  const int64_t tokens = x.Rows(), hidden = x.Cols(), top_k = ids.Cols();
  const int64_t local = static_cast<int64_t>(experts.gate.size());
  std::memset(y.data, 0, y.Bytes());
  // Token slots of each local expert, in token order.
  std::vector<std::vector<int64_t>> slots(local);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < top_k; ++j) {
      const int64_t e = ids.As<int32_t>()[t * top_k + j] - experts.expert_begin;
      if (e >= 0 && e < local) slots[e].push_back(t * top_k + j);
    }
  }
  std::vector<float> xe, gate, up, out;
  for (int64_t e = 0; e < local; ++e) {
    const int64_t n = static_cast<int64_t>(slots[e].size());
    if (n == 0) continue;
    const int64_t ffn = experts.gate[e].view.Rows();
    xe.resize(n * hidden);
    gate.resize(n * ffn);
    up.resize(n * ffn);
    out.resize(n * hidden);
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(xe.data() + i * hidden, x.As<float>() + slots[e][i] / top_k * hidden,
                  hidden * sizeof(float));
    }
    const Tensor xt = MakeTensor(DType::kF32, {n, hidden}, xe.data());
    const Tensor gt = MakeTensor(DType::kF32, {n, ffn}, gate.data());
    const Tensor ut = MakeTensor(DType::kF32, {n, ffn}, up.data());
    const Tensor ot = MakeTensor(DType::kF32, {n, hidden}, out.data());
    const Weight* ws[] = {&experts.gate[e], &experts.up[e]};
    const Tensor ys[] = {gt, ut};
    backend.MatMulGroup(xt, ws, {}, ys);
    backend.GatedActivation(gt, ut, experts.activation, gt);
    backend.MatMul(gt, experts.down[e], nullptr, ot);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = slots[e][i] / top_k;
      const float w = weights.As<float>()[slots[e][i]];
      float* yr = y.As<float>() + t * hidden;
      const float* o = out.data() + i * hidden;
      for (int64_t c = 0; c < hidden; ++c) yr[c] += w * o[c];
    }
  }
}

}  // namespace strata

// Mixture-of-experts on the CPU backend: routing on the host, and experts run as grouped
// matmuls (each expert's tokens gathered into one matrix, so its weights are read once per
// step) through the backend's own ops.
#pragma once

#include "worker/backend/backend.h"

namespace strata {

// logits: [tokens, num_experts] f32 -> ids: [tokens, top_k] i32, weights: [tokens, top_k] f32.
// Chosen experts are ordered by descending score (lower id first on ties).
void RouteExperts(const Tensor& logits, const MoeRouting& routing, const Tensor& ids,
                  const Tensor& weights);

// y = sum over the rank's experts of weight * expert(x) (see Backend::MoeFfn). Every token's
// sum runs in expert-id order, whatever else is in the batch.
void RunExperts(Backend& backend, const Tensor& x, const Tensor& ids, const Tensor& weights,
                const ExpertWeights& experts, const Tensor& y);

}  // namespace strata

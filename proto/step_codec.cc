#include "proto/step_codec.h"

#include <algorithm>

namespace strata {
namespace {

void EncodeSampling(const SamplingParams& p, v1::SamplingOptions& s) {
  s.set_temperature(p.temperature);
  s.set_top_k(p.top_k);
  s.set_top_p(p.top_p);
  s.set_min_p(p.min_p);
  s.set_seed(p.seed);
  s.set_stream(p.stream);
  s.set_presence_penalty(p.presence_penalty);
  s.set_frequency_penalty(p.frequency_penalty);
  s.set_repetition_penalty(p.repetition_penalty);
  for (const auto& [id, bias] : p.logit_bias) (*s.mutable_logit_bias())[id] += bias;
  s.set_logprobs(p.logprobs >= 0);
  s.set_top_logprobs(std::max(p.logprobs, 0));
}

SamplingParams DecodeSampling(const v1::SamplingOptions& s) {
  SamplingParams p;
  p.temperature = s.temperature();
  p.top_k = s.top_k();
  p.top_p = s.top_p() == 0.0f ? 1.0f : s.top_p();
  p.min_p = s.min_p();
  p.seed = s.seed();
  p.stream = s.stream();
  p.presence_penalty = s.presence_penalty();
  p.frequency_penalty = s.frequency_penalty();
  p.repetition_penalty = s.repetition_penalty() == 0.0f ? 1.0f : s.repetition_penalty();
  for (const auto& [id, bias] : s.logit_bias()) p.logit_bias.emplace_back(id, bias);
  std::sort(p.logit_bias.begin(), p.logit_bias.end());  // map order is unspecified
  p.logprobs = s.logprobs() ? s.top_logprobs() : -1;
  return p;
}

}  // namespace

void EncodeStep(const StepInput& step, v1::StepRequest& request) {
  request.set_return_logits(step.return_logits);
  request.mutable_release()->Add(step.release.begin(), step.release.end());
  for (const SequenceStepInput& seq : step.seqs) {
    v1::SequenceStep* out = request.add_seqs();
    out->set_seq_id(seq.seq_id);
    out->mutable_tokens()->Add(seq.tokens.begin(), seq.tokens.end());
    out->set_num_cached(seq.num_cached);
    out->mutable_new_blocks()->Add(seq.new_blocks.begin(), seq.new_blocks.end());
    out->set_start(seq.start);
    out->set_num_prompt_tokens(seq.num_prompt_tokens);
    out->mutable_cached_tokens()->Add(seq.cached_tokens.begin(), seq.cached_tokens.end());
    out->set_sample(seq.sample);
    if (seq.sample) EncodeSampling(seq.sampling, *out->mutable_sampling());
  }
}

StepInput DecodeStep(const v1::StepRequest& request) {
  StepInput step;
  step.return_logits = request.return_logits();
  step.release.assign(request.release().begin(), request.release().end());
  for (const v1::SequenceStep& s : request.seqs()) {
    SequenceStepInput seq;
    seq.seq_id = s.seq_id();
    seq.tokens.assign(s.tokens().begin(), s.tokens().end());
    seq.num_cached = s.num_cached();
    seq.new_blocks.assign(s.new_blocks().begin(), s.new_blocks().end());
    seq.start = s.start();
    seq.num_prompt_tokens = s.num_prompt_tokens();
    seq.cached_tokens.assign(s.cached_tokens().begin(), s.cached_tokens().end());
    seq.sample = s.sample();
    if (seq.sample) seq.sampling = DecodeSampling(s.sampling());
    step.seqs.push_back(std::move(seq));
  }
  return step;
}

void EncodeStepOutput(const StepOutput& out, v1::StepResult& result) {
  result.mutable_tokens()->Add(out.tokens.begin(), out.tokens.end());
  result.mutable_logits()->Add(out.logits.begin(), out.logits.end());
  for (size_t i = 0; i < out.logprobs.size(); ++i) {
    if (!out.logprobs[i]) continue;
    v1::TokenLogprobs* lp = result.add_logprobs();
    lp->set_index(static_cast<uint32_t>(i));
    lp->set_logprob(out.logprobs[i]->logprob);
    lp->mutable_top_ids()->Add(out.logprobs[i]->top_ids.begin(), out.logprobs[i]->top_ids.end());
    lp->mutable_top_logprobs()->Add(out.logprobs[i]->top_logprobs.begin(),
                                    out.logprobs[i]->top_logprobs.end());
  }
}

void DecodeStepOutput(const v1::StepResult& result, StepOutput& out) {
  out.tokens.assign(result.tokens().begin(), result.tokens().end());
  out.logits.assign(result.logits().begin(), result.logits().end());
  out.logprobs.assign(out.tokens.size(), std::nullopt);
  for (const v1::TokenLogprobs& lp : result.logprobs()) {
    if (lp.index() >= out.logprobs.size()) continue;
    TokenLogprobs& t = out.logprobs[lp.index()].emplace();
    t.logprob = lp.logprob();
    t.top_ids.assign(lp.top_ids().begin(), lp.top_ids().end());
    t.top_logprobs.assign(lp.top_logprobs().begin(), lp.top_logprobs().end());
  }
}

}  // namespace strata

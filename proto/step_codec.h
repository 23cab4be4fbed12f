// StepInput / StepOutput (common/step.h) <-> strata.v1.StepRequest / StepResult. Include only
// from .cc files (this header pulls in generated code).
#pragma once

#include "common/step.h"
#include "strata/v1/worker.pb.h"

namespace strata {

// Coordinator side.
void EncodeStep(const StepInput& step, v1::StepRequest& request);
// Reads the sampled rows' tokens, logprobs and logits of a result that has_tokens.
void DecodeStepOutput(const v1::StepResult& result, StepOutput& out);

// Worker side. Proto defaults read as "off": top_p and repetition_penalty 0 become 1.
StepInput DecodeStep(const v1::StepRequest& request);
void EncodeStepOutput(const StepOutput& out, v1::StepResult& result);

}  // namespace strata

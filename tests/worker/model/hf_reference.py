#!/usr/bin/env python3
"""Hugging Face transformers as an independent reference for the CUDA backend (GPU machine).

scripts/gpu-check.sh runs cuda_model_test with STRATA_LOGITS_OUT set, so the CUDA backend's
logits for every fixture the GPU runs and golden case are written there (raw f32, [24, vocab] per
file, named <family>_<hf|gguf>_case<k>.f32). This script runs transformers on the same GPU on
the same models (the fixtures' Hugging Face folders, eager attention) and token ids, in float32
and in bfloat16, and compares, position by position, with scale = max(1, max |reference|):

  * transformers f32 against the fixture's golden logits (llama.cpp, cross-checked in float64):
    the reference itself checks out (<= 1e-3 * scale, tight enough to catch a dropped llama3
    RoPE scaling, ~0.02; 1e-2 for Falcon, whose golden uses tanh GELU where transformers uses
    erf, a 5e-3 difference). A model that loads with a missing, unexpected or mis-shaped
    tensor (transformers would initialise it at random) fails as such;
  * Strata on the GPU against transformers f32, within the bounds cuda_model_test holds against
    the golden (its FixtureBound): |diff| <= 0.05 * scale at every position, except Gemma 2's
    fixture (26 random layers, ill-conditioned: only each case's first position) and the MoE
    fixtures (routing near-ties flip under bf16: up to 10% of positions past 0.05, within 0.5);
  * transformers' own bf16 run against its f32 run: what bf16 costs in transformers' hands, the
    peer figure Strata's error is reported against (their ratio).

Prints one row per model and case; exits 1 when a bound fails or a logits file is missing.
Usage: hf_reference.py --data DATA_DIR --logits LOGITS_DIR [--json OUT.json]
"""
import argparse
import json
import pathlib
import sys

import numpy as np
import torch
import transformers

# Families the CUDA backend runs (cuda_model_test's list); llama also from its GGUF.
MODELS = [("llama", "hf"), ("llama", "gguf"), ("mistral", "hf"), ("qwen2", "hf"),
          ("qwen3", "hf"), ("phi3", "hf"), ("phi2", "hf"), ("gemma2", "hf"), ("olmo2", "hf"),
          ("falcon", "hf"), ("mixtral", "hf"), ("deepseek2", "hf")]
STRATA_BOUND = 0.05
FIRST_POSITION_ONLY = {"gemma2"}  # cuda_model_test.cc FixtureBound
FAR_SHARE = {"mixtral": 0.1, "deepseek2": 0.1}
FAR_BOUND = 0.5
REFERENCE_BOUND = {"falcon": 1e-2}  # others: 1e-3


def ratios(got, want):
    """Per position: max |got - want| / max(1, max |want|)."""
    scale = np.maximum(1.0, np.abs(want).max(axis=1))
    return np.abs(got - want).max(axis=1) / scale


def worst_ratio(got, want):
    return float(ratios(got, want).max())


def strata_failure(family, cases):
    """Why Strata's per-position errors against transformers f32 (one array per golden case)
    break the family's bound, the share of far positions counted over all of its cases."""
    if family in FIRST_POSITION_ONLY:
        cases = [errors[:1] for errors in cases]
    errors = np.concatenate(cases)
    far = int((errors > STRATA_BOUND).sum())
    allowed = int(FAR_SHARE.get(family, 0.0) * errors.size)
    if far > allowed:
        return f"{far} of {errors.size} positions past {STRATA_BOUND} (max {errors.max():.3g})"
    if allowed and errors.max() > FAR_BOUND:
        return f"a position at {errors.max():.3g} (> {FAR_BOUND})"
    return None


def load(folder, dtype):
    # transformers 5 renamed torch_dtype to dtype.
    key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model, info = transformers.AutoModelForCausalLM.from_pretrained(
        folder, attn_implementation="eager", output_loading_info=True, **{key: dtype})
    bad = {k: v for k, v in info.items() if k != "error_msgs" and v} | (
        {"error_msgs": info["error_msgs"]} if info.get("error_msgs") else {})
    if bad:
        raise RuntimeError(f"{folder} did not load cleanly: {bad}")
    return model.to("cuda").eval()


def logits_of(model, tokens):
    with torch.no_grad():
        out = model(torch.tensor([tokens], device="cuda"))
    return out.logits[0].float().cpu().numpy().astype(np.float64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=pathlib.Path)
    parser.add_argument("--logits", required=True, type=pathlib.Path)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    torch.set_float32_matmul_precision("highest")  # no TF32: the f32 reference is f32
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, "
          f"{torch.cuda.get_device_name(0)}")
    print(f"{'model':<14}{'case':>5}{'hf f32 vs golden':>18}{'strata vs hf f32':>18}"
          f"{'hf bf16 vs f32':>16}{'strata / hf bf16':>18}")
    rows, failures = [], []
    loaded = {}
    strata_errors = {}  # model name -> (family, per-case error arrays)
    for family, form in MODELS:
        name = f"{family}_{form}"
        folder = args.data / "fixtures" / family / "hf"
        try:
            golden = json.loads((args.data / "fixtures" / family / "golden.json").read_text())
            if family not in loaded:
                loaded = {}  # one family's models on the GPU at a time
                loaded[family] = (load(folder, torch.float32), load(folder, torch.bfloat16))
        except Exception as e:  # noqa: BLE001 - one model's failure must not hide the others
            failures.append(f"{name}: {type(e).__name__}: {e}")
            continue
        f32, bf16 = loaded[family]
        for k, case in enumerate(golden["cases"]):
            try:
                tokens = case["tokens"]
                want = np.array(case["logits_all"], dtype=np.float64)
                ref = logits_of(f32, tokens)
                ref_bf16 = logits_of(bf16, tokens)
            except Exception as e:  # noqa: BLE001
                failures.append(f"{name} case {k}: {type(e).__name__}: {e}")
                continue
            if ref.shape != want.shape:
                failures.append(f"{name} case {k}: transformers gives {ref.shape}, golden {want.shape}")
                continue
            row = {"model": name, "case": k,
                   "hf_f32_vs_golden": worst_ratio(ref, want),
                   "hf_bf16_vs_hf_f32": worst_ratio(ref_bf16, ref)}
            bound = REFERENCE_BOUND.get(family, 1e-3)
            if row["hf_f32_vs_golden"] > bound:
                failures.append(f"{name} case {k}: transformers f32 is {row['hf_f32_vs_golden']:.3g} "
                                f"from the golden (> {bound}): the reference is in doubt")
            path = args.logits / f"{name}_case{k}.f32"
            ours = np.fromfile(path, dtype=np.float32).astype(np.float64) if path.exists() else None
            if ours is None or ours.size != ref.size:
                failures.append(f"{name} case {k}: " + (f"no Strata logits at {path}" if ours is None
                                else f"{ours.size} Strata logits, {ref.size} expected"))
                rows.append(row)
                print(f"{name:<14}{k:>5}{row['hf_f32_vs_golden']:>18.3g}{'-':>18}"
                      f"{row['hf_bf16_vs_hf_f32']:>16.3g}{'-':>18}")
                continue
            ours = ours.reshape(ref.shape)
            errors = ratios(ours, ref)
            row["strata_vs_hf_f32"] = float(errors.max())
            row["strata_argmax_agrees"] = float((ours.argmax(1) == ref.argmax(1)).mean())
            row["strata_over_hf_bf16"] = row["strata_vs_hf_f32"] / max(row["hf_bf16_vs_hf_f32"], 1e-12)
            rows.append(row)
            print(f"{name:<14}{k:>5}{row['hf_f32_vs_golden']:>18.3g}{row['strata_vs_hf_f32']:>18.3g}"
                  f"{row['hf_bf16_vs_hf_f32']:>16.3g}{row['strata_over_hf_bf16']:>18.2f}")
            strata_errors.setdefault(name, (family, []))[1].append(errors)
    for name, (family, cases) in strata_errors.items():
        why = strata_failure(family, cases)
        if why:
            failures.append(f"{name}: Strata against transformers f32: {why}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "failures": failures}, indent=1))
    for f in failures:
        print("FAIL:", f)
    print(f"{len(rows)} comparisons, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

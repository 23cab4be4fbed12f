#!/usr/bin/env bash
# The GPU check: the CUDA tests and benchmarks on a machine with a GPU, in one bounded call.
#
#   scripts/gpu-check.sh pack   here (no GPU needed): builds the GPU test and benchmark binaries
#                               and packs them, with the non-system shared libraries they load,
#                               into gpu-pack/pack.tar.gz (git-ignored, < 64 MiB), plus what a rebuild
#                               there needs (Abseil headers, GoogleTest sources, the generated
#                               kernel instances).
#   scripts/gpu-check.sh run    on the GPU machine, from the repository root with gpu-pack/
#                               beside it: runs every GPU test binary (the tests `ctest -L gpu`
#                               runs here, the backend parity table's cuda rows, the registry
#                               tests; the model tests read the packed copies of the shared
#                               files they need), compute-sanitizer's memcheck on a few attention
#                               cases and the experts' kernels, the attention benchmark and its
#                               PyTorch peer, the experts' benchmark, end-to-end decode of a
#                               Llama-3-8B-shaped bf16 model (written there by `strata synth`
#                               while the tests run) at batch 1/32/128 (and 1 without CUDA
#                               graphs, 128 with sampling on the device, and with an fp8 KV
#                               cache; and 4 x 2048-token prompts with and without
#                               --hopper-prefill on a compute capability 9.0 GPU) and of a
#                               Mixtral-shaped one at batch 1 and 32 (with and without graphs),
#                               after Hugging Face transformers on the same fixtures as a second
#                               reference for the model tests' logits (hf_reference.py); writes
#                               logs under $OUT and prints a summary last. If the packed binaries
#                               cannot start there (other system libraries), the attention tests
#                               and the benchmarks are rebuilt from the packed sources with that
#                               machine's nvcc first (GPU_CHECK_REBUILD=1 forces it).
#   scripts/gpu-check.sh run tests | run perf
#                               one half each, for when the stages do not fit one call: the
#                               tests, memcheck and the transformers comparison; or the
#                               benchmarks and the end-to-end decode.
#
# The device tool's call: command "bash scripts/gpu-check.sh run", carry ["gpu-pack"].
set -uo pipefail

cd "$(dirname "$0")/.."
BUILD=${STRATA_BUILD_DIR:-build}
CARRY=gpu-pack/pack.tar.gz  # what travels (gzip: the binaries and models halve)
PACK=$BUILD/gpu-pack        # the tree it holds (here: assembled; there: unpacked)
# In order of what matters most if the time runs out.
GPU_TESTS=(cuda_attention_registry_test cuda_attention_test cuda_ops_test backends_test
           backend_parity_test cuda_model_test nccl_communicator_test cuda_tp_test)
BUDGET=540  # seconds of the device call's 600 that stages may start within
BENCH=strata_attention_bench
MOE_BENCH=strata_moe_bench
SHARED=${STRATA_SHARED_DATA:-../shared/data}
# The shared files the model tests read there (../shared does not travel): stories260K and
# its golden ids, the fixtures (Hugging Face layout) and their goldens.
SHARED_FILES=(models/stories260K/hf models/stories260K/stories260K.gguf golden/stories260K.jsonl
              fixtures/llama/model.gguf)
for family in llama mistral qwen2 qwen3 phi3 phi2 gemma2 olmo2 falcon mixtral deepseek2; do
  SHARED_FILES+=("fixtures/$family/golden.json" "fixtures/$family/hf")
done

pack() {
  set -e
  ninja -C "$BUILD" "${GPU_TESTS[@]}" "$BENCH" "$MOE_BENCH"
  rm -rf "$PACK" "$(dirname "$CARRY")"
  mkdir -p "$PACK/bin" "$PACK/lib" "$PACK/src/gen" "$PACK/src/include" "$(dirname "$CARRY")"
  for t in "${GPU_TESTS[@]}"; do cp "$(find "$BUILD/tests" -name "$t" -type f -executable)" "$PACK/bin/"; done
  cp "$BUILD/bench/cuda/$BENCH" "$BUILD/bench/cuda/$MOE_BENCH" "$BUILD/coordinator/cli/strata" \
    "$PACK/bin/"
  # Shared libraries outside the C and C++ runtimes (which the GPU machine has, newer), except
  # cuBLASLt and NCCL (hundreds of MiB; the GPU machine's CUDA or PyTorch provides them).
  for b in "$PACK"/bin/*; do
    ldd "$b" | awk '$3 ~ /^\// {print $3}'
  done | sort -u | grep -v -E '/(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|libcublasLt|libnccl)\.so' |
    while read -r lib; do cp -L "$lib" "$PACK/lib/"; done
  strip --strip-debug "$PACK"/bin/* "$PACK"/lib/*
  cp "$BUILD"/kernels/cuda/attention_*.cu "$PACK/src/gen/"
  cp -r /usr/include/absl "$PACK/src/include/"
  cp -r /usr/src/googletest/googletest /usr/src/googletest/googlemock "$PACK/src/"
  for f in "${SHARED_FILES[@]}"; do
    mkdir -p "$PACK/data/$(dirname "$f")"
    cp -rL "$SHARED/$f" "$PACK/data/$f"
  done
  tar -C "$PACK" -czf "$CARRY" .
  du -sh "$PACK"/* "$CARRY"
}

# Rebuilds the attention tests and the benchmarks with this machine's nvcc (sm_90a) from the
# packed sources: the kernels, the registry, GoogleTest, and the packed Abseil libraries.
rebuild() {
  local out=$1 src=$PACK/src obj=$1/obj
  mkdir -p "$obj"
  local flags=(-std=c++17 -O2 -I. -I"$src/include" -I"$src/googletest/include" -I"$src/googletest"
               -I"$src/googlemock/include" -I"$src/googlemock"
               -gencode=arch=compute_90a,code=sm_90a)
  local kernels=() gtest=() pids=()
  for f in "$src"/gen/attention_*.cu kernels/cuda/attention_registry.cc; do
    kernels+=("$obj/$(basename "$f").o")
    nvcc "${flags[@]}" -c "$f" -o "${kernels[-1]}" & pids+=($!)
  done
  for f in "$src/googletest/src/gtest-all.cc" "$src/googlemock/src/gmock-all.cc" \
           "$src/googletest/src/gtest_main.cc"; do
    gtest+=("$obj/$(basename "$f").o")
    nvcc "${flags[@]}" -c "$f" -o "${gtest[-1]}" & pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || return 1; done
  local absl=()  # versioned names, which nvcc only passes on through -Xlinker
  for lib in "$PACK"/lib/libabsl_*; do absl+=(-Xlinker "$lib"); done
  for t in cuda_attention_registry_test cuda_attention_test; do
    nvcc "${flags[@]}" "tests/kernels/$t.cc" "${kernels[@]}" "${gtest[@]}" "${absl[@]}" \
      -o "$out/$t" || return 1
  done
  nvcc "${flags[@]}" bench/cuda/attention_bench.cu "${kernels[@]}" "${absl[@]}" -o "$out/$BENCH" ||
    return 1
  # The experts' bench links moe.cu alone, so a failure there leaves the attention runs whole.
  nvcc "${flags[@]}" bench/cuda/moe_bench.cu kernels/cuda/moe.cu "${absl[@]}" -o "$out/$MOE_BENCH" ||
    echo "rebuild: strata_moe_bench failed" >&2
}

run() {
  local stages=${1:-all}
  case "$stages" in all|tests|perf) ;; *) echo "run: stages are all, tests or perf" >&2; return 2 ;; esac
  want() { [ "$stages" = all ] || [ "$stages" = "$1" ]; }
  local out=${OUT:-/tmp/gpu-check}
  mkdir -p "$out"
  local start=$SECONDS
  PACK=/tmp/strata-gpu-pack
  rm -rf "$PACK" && mkdir -p "$PACK" && tar -C "$PACK" -xzf "$CARRY" || return 1
  local bin=$PACK/bin summary=$out/summary.txt
  : > "$summary"
  export LD_LIBRARY_PATH=$PACK/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export STRATA_SHARED_DATA=$PACK/data STRATA_REQUIRE_SHARED_DATA=1
  export STRATA_LOGITS_OUT=$out/logits  # cuda_model_test's fixture logits, for hf_reference.py
  rm -rf "$STRATA_LOGITS_OUT" && mkdir -p "$STRATA_LOGITS_OUT"
  local python=python3
  [ -x /opt/torch/.venv/bin/python3 ] && python=/opt/torch/.venv/bin/python3
  # cuBLASLt and NCCL are not carried (hundreds of MiB): the machine's CUDA or PyTorch has them.
  local lib found
  for lib in 'libcublasLt.so.13*' 'libnccl.so.2*'; do
    found=$(find /usr/local/cuda*/ /usr/lib /opt -name "$lib" 2>/dev/null | head -1)
    if [ -n "$found" ]; then
      LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$(dirname "$found")
    else
      echo "WARNING: no $lib on this machine: binaries linking it will not start" | tee -a "$summary"
    fi
  done
  nvidia-smi > "$out/nvidia-smi.txt" 2>&1
  head -12 "$out/nvidia-smi.txt"
  local model=/tmp/strata-llama3-8b-bf16.gguf synth
  local moe_model=/tmp/strata-mixtral-2l-bf16.gguf synth_moe
  if ! want perf; then
    (echo "stages '$stages': no model written" > "$out/synth.log"; exit 1) &
    synth=$!
    synth_moe=$synth
  elif nvidia-smi -L > /dev/null 2>&1; then
    timeout 360 nice "$PACK/bin/strata" synth --preset llama3-8b --dtype bf16 -o "$model" \
      > "$out/synth.log" 2>&1 &
    synth=$!
    timeout 360 nice "$PACK/bin/strata" synth --preset mixtral-2l --dtype bf16 -o "$moe_model" \
      > "$out/synth_moe.log" 2>&1 &
    synth_moe=$!
  else
    (echo "no GPU: no model written" > "$out/synth.log"; exit 1) &
    synth=$!
    synth_moe=$synth
  fi
  if [ -n "${GPU_CHECK_REBUILD:-}" ] ||
     ! "$bin/cuda_attention_registry_test" --gtest_brief=1 > "$out/start-check.log" 2>&1; then
    echo "rebuilding with this machine's nvcc (packed binaries did not start, or" \
         "GPU_CHECK_REBUILD is set; see start-check.log)" | tee -a "$summary"
    bin=$out/rebuilt
    mkdir -p "$bin"
    if ! (time rebuild "$bin") > "$out/rebuild.log" 2>&1; then
      echo "rebuild failed: tail of rebuild.log:" | tee -a "$summary"
      tail -30 "$out/rebuild.log"
      return 1
    fi
  fi
  # Starts a stage only if `seconds` more still fit in the budget.
  fits() { [ $((SECONDS - start + $1)) -le "$BUDGET" ]; }
  local tests=("${GPU_TESTS[@]}")
  want tests || tests=()
  for t in "${tests[@]}"; do
    [ -x "$bin/$t" ] || { echo "$t: not built for this run" | tee -a "$summary"; continue; }
    fits 60 || { echo "$t: skipped (time)" | tee -a "$summary"; continue; }
    local filter='*'
    [ "$t" = backend_parity_test ] && filter='*cuda*'  # the CPU rows ran here
    # Kernels load with the context, as ctest has them (cuda_model_test measures device memory).
    CUDA_MODULE_LOADING=EAGER timeout $((BUDGET - (SECONDS - start) - 30)) "$bin/$t" --gtest_filter="$filter" \
      --gtest_output="xml:$out/$t.xml" \
      > "$out/$t.log" 2>&1
    local rc=$?
    echo "$t: rc=$rc$(grep -E '^\[  (PASSED|FAILED|SKIPPED) +\] [0-9]+ test' "$out/$t.log" |
      sed -E 's/^\[ +([A-Z]+) +\] ([0-9]+) tests?.*/, \2 \1/' | tr -d '\n')" | tee -a "$summary"
    if [ "$t" = backend_parity_test ] && ! grep -q '^\[       OK \]' "$out/$t.log"; then
      echo "$t: no cuda rows ran (the backend saw no device): this is not a GPU run" | tee -a "$summary"
    fi
    if grep -q 'no CUDA device\|built without CUDA' "$out/$t.log"; then
      echo "$t: SKIPPED tests for want of a device: this is not a GPU run" | tee -a "$summary"
    fi
  done
  if want tests && command -v compute-sanitizer > /dev/null && fits 150; then
    timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/cuda_attention_test" \
      --gtest_filter='*decode_d128_gqa4*:*prefill_d128_mixed*:*window_37*:*decode_d256_gqa8*:*hopper_d128_mixed*:*hopper_block8*' \
      > "$out/memcheck.log" 2>&1
    echo "memcheck: rc=$? $(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | head -1)" | tee -a "$summary"
  fi
  # The experts' kernels (route, plan, grouped matmuls, combine) through the backend.
  if want tests && command -v compute-sanitizer > /dev/null && [ -x "$bin/backend_parity_test" ] &&
     fits 60; then
    timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/backend_parity_test" \
      --gtest_filter='*Moe*cuda*' > "$out/memcheck_moe.log" 2>&1
    echo "memcheck moe: rc=$? $(grep -E 'ERROR SUMMARY' "$out/memcheck_moe.log" | head -1)" | tee -a "$summary"
  fi
  if want perf && fits 90; then
    timeout 90 "$bin/$BENCH" > "$out/attention_bench.txt" 2>&1
    echo "attention bench: rc=$?" >> "$summary"
  fi
  if want perf && fits 60; then
    timeout 60 "$bin/$MOE_BENCH" > "$out/moe_bench.txt" 2>&1
    echo "moe bench: rc=$?" >> "$summary"
  fi
  if want perf && fits 90; then
    timeout 90 "$python" bench/cuda/sdpa_peer.py > "$out/sdpa_peer.txt" 2>&1
    echo "sdpa peer: rc=$?" >> "$summary"
  fi
  # Transformers on the same GPU, models and ids: a second, independent reference for the
  # fixture logits cuda_model_test wrote (offline: the machine has no network). Before the
  # end-to-end runs, so that correctness comes first if the time runs out.
  if ! want tests; then
    :
  elif ! fits 90; then
    echo "hf reference: skipped (time)" >> "$summary"
  elif ! "$python" -c 'import torch, transformers' > /dev/null 2>&1; then
    echo "hf reference: skipped (no torch/transformers for $python)" >> "$summary"
  else
    [ -n "$(ls -A "$STRATA_LOGITS_OUT")" ] ||
      echo "hf reference: no Strata logits (cuda_model_test did not run): reference rows only" >> "$summary"
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 timeout 90 "$python" tests/worker/model/hf_reference.py \
      --data "$STRATA_SHARED_DATA" --logits "$STRATA_LOGITS_OUT" --json "$out/hf_reference.json" \
      > "$out/hf_reference.txt" 2>&1
    echo "hf reference: rc=$? $(tail -1 "$out/hf_reference.txt")" >> "$summary"
  fi
  # End to end: Llama-3-8B-shaped bf16 decode at batch 1, 32, 128 against the copy bandwidth
  # (the model was being written in the background since the start).
  local copy
  copy=$(sed -n 's/^copy: \([0-9]*\) GB\/s.*/\1/p' "$out/attention_bench.txt" 2> /dev/null)
  if ! want perf; then
    :
  elif ! fits 120; then
    kill "$synth" 2> /dev/null
    echo "e2e: skipped (time)" >> "$summary"
  elif wait "$synth" && [ -n "$copy" ]; then
    for batch in 1 32 128; do
      fits 100 || { echo "e2e batch $batch: skipped (time)" >> "$summary"; continue; }
      timeout 100 "$PACK/bin/strata" bench generate --model "$model" --device cuda --batch "$batch" \
        --prompt-tokens 128 --decode-tokens 64 --bandwidth-gbps "$copy" \
        > "$out/e2e_batch$batch.txt" 2>&1
      echo "e2e batch $batch: rc=$? $(grep -E 'prefill:|decode:|ratio' "$out/e2e_batch$batch.txt" | tr '\n' ' ')" >> "$summary"
    done
    # Batch 1 again with every op queued (--eager, no CUDA graphs): against the batch-1 run,
    # what replaying recorded decode steps saves in launches.
    if fits 100; then
      timeout 100 "$PACK/bin/strata" bench generate --model "$model" --device cuda --batch 1 \
        --prompt-tokens 128 --decode-tokens 64 --bandwidth-gbps "$copy" --eager \
        > "$out/e2e_batch1_eager.txt" 2>&1
      echo "e2e batch 1 eager: rc=$? $(grep -E 'decode:|ratio' "$out/e2e_batch1_eager.txt" | tr '\n' ' ')" >> "$summary"
    fi
    # Batch 1 and 128 with cuBLASLt choosing per batch size (--per-shape-matmul): against the
    # default runs, what batch invariance (one algorithm per weight) costs in prefill and decode.
    for batch in 1 128; do
      fits 100 || { echo "e2e batch $batch per-shape matmul: skipped (time)" >> "$summary"; continue; }
      timeout 100 "$PACK/bin/strata" bench generate --model "$model" --device cuda --batch "$batch" \
        --prompt-tokens 128 --decode-tokens 64 --bandwidth-gbps "$copy" --per-shape-matmul \
        > "$out/e2e_batch${batch}_per_shape.txt" 2>&1
      echo "e2e batch $batch per-shape matmul: rc=$? $(grep -E 'prefill:|decode:|ratio' "$out/e2e_batch${batch}_per_shape.txt" | tr '\n' ' ')" >> "$summary"
    done
    # The same at batch 128 with sampling drawn on the device (temperature 0.8, top-p 0.9):
    # against the greedy run, the sampler's cost.
    if fits 100; then
      timeout 100 "$PACK/bin/strata" bench generate --model "$model" --device cuda --batch 128 \
        --prompt-tokens 128 --decode-tokens 64 --bandwidth-gbps "$copy" --temperature 0.8 \
        --top-p 0.9 > "$out/e2e_batch128_sampled.txt" 2>&1
      echo "e2e batch 128 sampled: rc=$? $(grep -E 'decode:|ratio' "$out/e2e_batch128_sampled.txt" | tr '\n' ' ')" >> "$summary"
    fi
    # And with an f8_e4m3 KV cache (half the cache bytes a token): against the bf16 cache's run.
    if fits 100; then
      timeout 100 "$PACK/bin/strata" bench generate --model "$model" --device cuda --batch 128 \
        --prompt-tokens 128 --decode-tokens 64 --bandwidth-gbps "$copy" --kv-dtype f8_e4m3 \
        > "$out/e2e_batch128_fp8kv.txt" 2>&1
      echo "e2e batch 128 fp8 KV: rc=$? $(grep -E 'decode:|ratio' "$out/e2e_batch128_fp8kv.txt" | tr '\n' ' ')" >> "$summary"
    fi
    # Long prompts (4 x 2048 tokens) on the portable prefill kernel and, on a compute
    # capability 9.0 GPU, on the Hopper one (--hopper-prefill): what the wgmma/TMA kernel saves
    # end to end.
    local flags=("")
    [ "$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1)" = 9.0 ] &&
      flags+=(--hopper-prefill)
    for flag in "${flags[@]}"; do
      fits 100 || { echo "e2e prefill 4x2048 $flag: skipped (time)" >> "$summary"; continue; }
      timeout 100 "$PACK/bin/strata" bench generate --model "$model" --device cuda --batch 4 \
        --prompt-tokens 2048 --decode-tokens 8 --bandwidth-gbps "$copy" $flag \
        > "$out/e2e_prefill4x2048${flag:+_hopper}.txt" 2>&1
      echo "e2e prefill 4x2048 ${flag:-portable}: rc=$? $(grep -E 'prefill:' "$out/e2e_prefill4x2048${flag:+_hopper}.txt" | tr '\n' ' ')" >> "$summary"
    done
  else
    echo "e2e: skipped (no model: see synth.log, or no copy figure)" >> "$summary"
  fi
  # Mixture of experts (Mixtral-8x7B's layer shape, 2 layers; the experts routed and run on the
  # device): batch 1 and 32 replayed from graphs and with every op queued (--eager), against
  # the bound of the bytes a token's active experts read.
  if want perf && fits 100 && wait "$synth_moe" && [ -n "$copy" ]; then
    local eager log
    for batch in 1 32; do
      for eager in "" --eager; do
        fits 60 || { echo "e2e moe batch $batch $eager: skipped (time)" >> "$summary"; continue; }
        log=$out/e2e_moe_batch$batch${eager:+_eager}.txt
        timeout 60 "$PACK/bin/strata" bench generate --model "$moe_model" --device cuda \
          --batch "$batch" --prompt-tokens 128 --decode-tokens 64 --bandwidth-gbps "$copy" \
          $eager > "$log" 2>&1
        echo "e2e moe batch $batch $eager: rc=$? $(grep -E 'prefill:|decode:|ratio' "$log" | tr '\n' ' ')" >> "$summary"
      done
    done
  elif want perf; then
    kill "$synth_moe" 2> /dev/null
    echo "e2e moe: skipped (time, no model: see synth_moe.log, or no copy figure)" >> "$summary"
  fi
  echo "=== summary ($((SECONDS - start)) s)"
  cat "$summary" "$out/hf_reference.txt" "$out/attention_bench.txt" "$out/sdpa_peer.txt" \
    "$out/moe_bench.txt" 2> /dev/null
}

case "${1:-}" in
  pack) pack ;;
  run) run "${2:-all}" ;;
  *) echo "usage: $0 pack | run [all|tests|perf]" >&2; exit 2 ;;
esac

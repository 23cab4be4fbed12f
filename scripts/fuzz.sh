#!/usr/bin/env bash
# Coverage-guided fuzzing: libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer (Clang).
# Builds the targets of tests/fuzz into ./build-fuzz and runs each for RUNS executions (default
# 1000000, one process per target, one after another), growing build-fuzz/corpus/NAME from the
# committed seeds in tests/fuzz/corpus/NAME, the generated model-file seeds
# (tests/fuzz/make_seeds.py) and, for templates and configs, the real ones in ../shared/data. A crash stops the script; its input is kept in build-fuzz/crashes/NAME.
#
#   scripts/fuzz.sh [-runs=N] [-max_total_time=S] [TARGET...]
#
# Prints per target: executions, seconds, corpus inputs and bytes (docs/reliability.md records
# them). The suite's smoke tests (ctest -L fuzz) run the same targets without libFuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=1000000
extra=()
targets=()
for arg in "$@"; do
  case "$arg" in
    -runs=*) runs="${arg#-runs=}" ;;
    -*) extra+=("$arg") ;;
    *) targets+=("$arg") ;;
  esac
done
if ((${#targets[@]} == 0)); then
  targets=(chat_template_fuzz tokenizer_fuzz tokenizer_json_fuzz hf_config_fuzz gguf_fuzz
           safetensors_fuzz worker_step_fuzz http_request_fuzz)
fi

command -v clang++ >/dev/null || { echo "fuzz: needs clang (apt-get install clang)" >&2; exit 1; }
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DSTRATA_FUZZ=ON -DSTRATA_CUDA=OFF >/dev/null
ninja -C build-fuzz "${targets[@]}" strata_fuzz_seeds

shared="${STRATA_SHARED_DATA:-$PWD/../shared/data}"
export STRATA_SOURCE_DIR="$PWD"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
for t in "${targets[@]}"; do
  corpus="build-fuzz/corpus/$t" crashes="build-fuzz/crashes/$t" log="build-fuzz/logs/$t.log"
  mkdir -p "$corpus" "$crashes" "$(dirname "$log")"
  for seeds in tests/fuzz/corpus/"$t" build-fuzz/tests/fuzz/seeds/"$t"; do
    [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/
  done
  case "$t" in
    chat_template_fuzz) [ -d "$shared/chat_templates" ] && cp -n "$shared"/chat_templates/*.jinja "$corpus"/ ;;
    hf_config_fuzz)
      for c in "$shared"/configs/*/config.json; do
        [ -f "$c" ] && cp -n "$c" "$corpus/$(basename "$(dirname "$c")").json"
      done ;;
  esac
  max_len=8192 leaks=1
  case "$t" in gguf_fuzz|tokenizer_json_fuzz|safetensors_fuzz) max_len=65536 ;; esac
  # The gateway's threads free a connection after the input returns: not a leak per input.
  [ "$t" = http_request_fuzz ] && leaks=0
  start=$(date +%s)
  if ! "build-fuzz/tests/fuzz/$t" -runs="$runs" -max_len="$max_len" -timeout=60 \
      -rss_limit_mb=6144 -detect_leaks="$leaks" -print_final_stats=1 -artifact_prefix="$crashes/" "${extra[@]}" \
      "$corpus" >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz: $t failed; input in $crashes/, log in $log" >&2
    exit 1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  printf '%-22s %10s execs %6ss  corpus %5s inputs %9s bytes\n' "$t" "$execs" \
    "$(($(date +%s) - start))" "$(find "$corpus" -type f | wc -l)" \
    "$(find "$corpus" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')"
done

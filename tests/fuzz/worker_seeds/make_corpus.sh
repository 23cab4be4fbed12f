#!/usr/bin/env bash
# Rebuilds ../corpus/worker_step_fuzz from these text-format messages (protoc --encode), framed
# as worker_step_fuzz reads them: [kind: u8][length: u16 little-endian][message].
set -euo pipefail
cd "$(dirname "$0")"
out=../corpus/worker_step_fuzz
kind() { case "$1" in StepRequest) echo 0 ;; ReleaseRequest) echo 1 ;; StepResult) echo 2 ;; esac; }
frame() {  # frame NAME.TYPE
  local type="${1#*.}"
  local bytes
  bytes=$(mktemp)
  protoc -I ../../../proto --encode="strata.v1.$type" strata/v1/worker.proto \
    <"$1.textproto" >"$bytes"
  local n
  n=$(stat -c %s "$bytes")
  printf "\\x$(printf %02x "$(kind "$type")")\\x$(printf %02x $((n & 255)))\\x$(printf %02x $((n >> 8)))"
  cat "$bytes"
  rm -f "$bytes"
}
mkdir -p "$out"
{ frame step1.StepRequest; frame step2.StepRequest; frame step2.StepRequest; } >"$out/prefill_decode"
{ frame step1.StepRequest; frame step3.StepRequest; frame release.ReleaseRequest; } >"$out/prefix_release"
frame step3.StepRequest >"$out/cached_start"
frame result.StepResult >"$out/step_result"

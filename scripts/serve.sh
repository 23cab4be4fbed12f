#!/usr/bin/env bash
# Sets up a fresh machine, builds Strata and starts it: `strata serve`, a coordinator and
# TP x PP local worker processes. With no arguments it serves the embedded default model
# (random weights, created on first use) on one worker; pass `strata serve` flags for your own,
# e.g.  scripts/serve.sh --model /models/llama --tp 2 --pp 1 --prompt "Hello".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec build/coordinator/cli/strata serve "$@"

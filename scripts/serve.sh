#!/usr/bin/env bash
# Sets up a fresh machine, builds Strata and runs it. With no arguments it generates from the
# embedded default model (random weights, created on first use); pass `strata generate` flags
# to use your own model, e.g.  scripts/serve.sh --model /models/llama --prompt "Hello".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec build/coordinator/cli/strata generate "$@"

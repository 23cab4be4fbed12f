#!/usr/bin/env bash
# Sets up a fresh machine, builds Strata and runs the whole test suite (CPU tests; GPU tests
# carry the label `gpu` and skip where no device exists).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh "$@"
ctest --test-dir build --output-on-failure --timeout 600 -j2

#!/usr/bin/env bash
# Configures and builds Strata into ./build (Ninja, ccache when present). Extra arguments are
# passed to CMake's configure step, e.g. -DSTRATA_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja "$@" >/dev/null
ninja -C build

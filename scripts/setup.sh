#!/usr/bin/env bash
# Installs every Debian package Strata's build and tests need. Idempotent: packages already
# present are skipped, and `apt-get update` runs at most once per invocation.
# STRATA_SETUP_TESTS=0 installs only what building needs (the container images' build stage):
# no Prometheus, Node.js or npm reference packages.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build ccache pkg-config xz-utils
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgloo-dev
  libboost1.81-dev libboost-json1.81-dev
  libpcre2-dev libutf8proc-dev
  libspdlog-dev libfmt-dev libcli11-dev
  python3  # writes the fuzz targets' model-file seeds at build time (tests/fuzz/make_seeds.py)
)
tests="${STRATA_SETUP_TESTS:-1}"
if [ "$tests" != 0 ]; then
  # promtool and a real server for the tests of deploy/prometheus and deploy/grafana; Go,
  # Sprig and a YAML library to render deploy/helm as Helm does (Debian packages no Helm).
  packages+=(prometheus golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev)
  # The TLS tests issue their own certificates.
  packages+=(openssl)
  # Node.js runs the JavaScript reference implementations in the tests; use the machine's own
  # when it has one.
  command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi

# Reference implementations the tests compare against (npm registry): tokenizers and chat
# templates from Hugging Face's JavaScript libraries. --ignore-scripts: the ONNX runtime that
# @huggingface/transformers pulls in would try to download binaries; tokenizers do not need it.
if [ "$tests" = 0 ]; then
  :
elif command -v npm >/dev/null 2>&1; then
  if [ ! -d tests/node/node_modules ] || [ tests/node/package-lock.json -nt tests/node/node_modules ]; then
    echo "setup: installing test reference packages (npm)"
    (cd tests/node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  fi
else
  echo "setup: npm not found; tests that compare with the JavaScript references will fail" >&2
fi

#!/usr/bin/env bash
# Installs every Debian package Strata's build and tests need. Idempotent: packages already
# present are skipped, and `apt-get update` runs at most once per invocation.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config xz-utils
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgloo-dev
  libboost1.81-dev libboost-json1.81-dev
  libpcre2-dev libutf8proc-dev
  libspdlog-dev libfmt-dev libcli11-dev
)

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

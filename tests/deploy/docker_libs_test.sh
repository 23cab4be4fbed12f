#!/usr/bin/env bash
# The runtime stage of a Dockerfile in deploy/docker copies exactly the shared libraries the
# strata binary links, as ldd lists them: none missing (the image would not start), none extra;
# it runs as a non-root user and has a HEALTHCHECK.
#   docker_libs_test.sh STRATA_BINARY DOCKERFILE cpu|cuda
# Not copied, by design: the vDSO, glibc and the C++ runtime (in the base image: apt needs
# them) and the CUDA driver (mounted by the NVIDIA container toolkit); the CPU image, built
# with -DSTRATA_CUDA=OFF, has no CUDA libraries either.
set -euo pipefail
binary=$1 dockerfile=$2 kind=$3

base='^(linux-vdso\.so|ld-linux-x86-64\.so|libc\.so|libm\.so|libpthread\.so|libdl\.so|librt\.so|libstdc\+\+\.so|libgcc_s\.so|libcuda\.so)'
cuda='^(libcudart|libcublas|libcublasLt|libnccl|libnvrtc|libnvJitLink)\.so'

needed=$(ldd "$binary" | awk '{print $1}' | sed 's|.*/||' | grep -Ev "$base" |
         { if [ "$kind" = cpu ]; then grep -Ev "$cuda"; else cat; fi; } | sort -u)
# The sources of the runtime stage's `COPY --from=build ... /usr/lib/x86_64-linux-gnu/`.
paths=$(awk '/^FROM .* AS runtime/ {rt = 1}
             rt && /^COPY --from=build \\$/ {copy = 1; next}
             copy { if ($1 ~ /^\//) print $1; if ($NF != "\\") copy = 0 }' "$dockerfile" | grep -v '/$')
copied=$(echo "$paths" | sed 's|.*/||' | sort -u)

# The build stage is Debian bookworm with the same packages as this machine: every source path
# must exist here too, or `docker build` would fail on it.
# NVIDIA's packages: the toolkit under /usr/local/cuda, and NCCL (libnccl2, from NVIDIA's
# repository) in the multiarch directory there, under /usr/local/cuda here.
for path in $paths; do
  case "$path" in /usr/local/cuda* | */libnccl.so.*) continue ;; esac
  [ -e "$path" ] || { echo "$dockerfile: $path does not exist on a Debian bookworm build machine"; exit 1; }
done

missing=$(comm -23 <(echo "$needed") <(echo "$copied"))
extra=$(comm -13 <(echo "$needed") <(echo "$copied"))
if [ -n "$missing" ] || [ -n "$extra" ]; then
  echo "$dockerfile: the runtime stage's libraries differ from ldd $binary"
  [ -z "$missing" ] || echo "missing (add to the COPY):" $missing
  [ -z "$extra" ] || echo "not needed (remove):" $extra
  exit 1
fi
# Runs as a numeric non-root user (Kubernetes' runAsNonRoot can verify it) with a health check.
runtime=$(awk '/^FROM .* AS runtime/ {rt = 1} rt' "$dockerfile")
grep -Eq '^USER [1-9][0-9]*(:[1-9][0-9]*)?$' <<<"$runtime" ||
  { echo "$dockerfile: the runtime stage needs USER <non-zero uid>"; exit 1; }
grep -q '^HEALTHCHECK ' <<<"$runtime" || { echo "$dockerfile: no HEALTHCHECK"; exit 1; }
echo "$dockerfile: $(echo "$copied" | wc -l) libraries, exactly what the binary links"

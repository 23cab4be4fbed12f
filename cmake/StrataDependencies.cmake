# Dependency lookup. Everything comes from Debian bookworm packages installed by
# scripts/setup.sh; docs/architecture.md says why each one is here.
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(GTest CONFIG REQUIRED)
find_package(benchmark CONFIG REQUIRED)
find_package(Boost 1.81 CONFIG REQUIRED COMPONENTS json)
find_package(spdlog CONFIG REQUIRED)
find_package(fmt CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(Gloo CONFIG REQUIRED)  # libgloo-dev: /usr/share/cmake/Gloo, target `gloo`
find_package(prometheus-cpp CONFIG REQUIRED)  # core only: /metrics is served by our gateway
find_package(OpenSSL REQUIRED)  # libcrypto: SHA-256 key ids in audit lines (gRPC links it anyway)

# Build options and compiler flags shared by every Strata target.
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
set(CMAKE_EXPORT_COMPILE_COMMANDS ON)

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "Build type" FORCE)
endif()

find_program(STRATA_CCACHE ccache)
if(STRATA_CCACHE)
  set(CMAKE_C_COMPILER_LAUNCHER ${STRATA_CCACHE})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${STRATA_CCACHE})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${STRATA_CCACHE})
endif()

option(STRATA_WERROR "Treat warnings as errors" OFF)
option(STRATA_ASAN_TESTS "Build the parser fuzz test with AddressSanitizer" ON)

# The libFuzzer build (Clang only; scripts/fuzz.sh makes it in ./build-fuzz): every target is
# compiled with AddressSanitizer, UndefinedBehaviorSanitizer and libFuzzer's coverage, and the
# targets under tests/fuzz link libFuzzer's driver. Without it they link tests/fuzz/fuzz_main.cc
# (corpus replay plus random mutations) and run as short smoke tests in the suite.
option(STRATA_FUZZ "Build the libFuzzer targets with ASan and UBSan (Clang)" OFF)
if(STRATA_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "STRATA_FUZZ needs Clang (libFuzzer): configure with CXX=clang++")
  endif()
  # -fno-sanitize=function: Clang 14 cannot emit its checks in coroutines (the gateway's
  # handlers): "Cannot represent a difference across sections".
  set(STRATA_SANITIZERS -fsanitize=address,undefined -fno-sanitize=function
      -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_compile_options(${STRATA_SANITIZERS} -fsanitize=fuzzer-no-link
      -fsanitize-coverage-ignorelist=${CMAKE_SOURCE_DIR}/tests/fuzz/coverage_ignorelist.txt)
  add_link_options(${STRATA_SANITIZERS})
  set(STRATA_ASAN_TESTS OFF CACHE BOOL "" FORCE)  # everything is instrumented already
endif()

# Warnings on for our code only (dependencies are included as SYSTEM).
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  set(STRATA_SHADOW_WARNING -Wshadow-uncaptured-local)
else()
  set(STRATA_SHADOW_WARNING -Wshadow=local)
endif()
set(STRATA_WARNINGS -Wall -Wextra -Wpedantic -Wno-unused-parameter ${STRATA_SHADOW_WARNING}
    -Wnon-virtual-dtor -Wimplicit-fallthrough)
if(STRATA_WERROR)
  list(APPEND STRATA_WARNINGS -Werror)
endif()
add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:${STRATA_WARNINGS}>")
# RelWithDebInfo defaults to -O2; the CPU kernels want -O3. The fuzz build wants assertions on
# and -O1 (the usual trade between sanitizer speed and build time).
string(REPLACE "-O2" "-O3" CMAKE_CXX_FLAGS_RELWITHDEBINFO "${CMAKE_CXX_FLAGS_RELWITHDEBINFO}")
if(STRATA_FUZZ)
  set(CMAKE_CXX_FLAGS_RELWITHDEBINFO "-O1 -g")
endif()

# strata_add_test(NAME SOURCES... [LIBS ...] [LABELS ...]): one GoogleTest binary, registered
# with CTest through gtest_discover_tests so each case is reported on its own.
include(GoogleTest)
function(strata_add_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  set(labels cpu)
  if(T_LABELS)
    set(labels ${T_LABELS})
  endif()
  # GPU tests load their kernels with the CUDA context, not at each kernel's first launch
  # (which takes device memory): they measure device memory.
  set(loading "CUDA_MODULE_LOADING=reset:")
  if("gpu" IN_LIST labels)
    set(loading "CUDA_MODULE_LOADING=set:EAGER")
  endif()
  gtest_discover_tests(${name}
    PROPERTIES LABELS "${labels}"
               ENVIRONMENT "STRATA_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
               ENVIRONMENT_MODIFICATION "${loading}"
    DISCOVERY_TIMEOUT 60)
endfunction()

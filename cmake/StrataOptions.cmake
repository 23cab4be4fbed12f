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

# Warnings on for our code only (dependencies are included as SYSTEM).
set(STRATA_WARNINGS -Wall -Wextra -Wpedantic -Wno-unused-parameter -Wshadow=local
    -Wnon-virtual-dtor -Wimplicit-fallthrough)
if(STRATA_WERROR)
  list(APPEND STRATA_WARNINGS -Werror)
endif()
add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:${STRATA_WARNINGS}>")
# RelWithDebInfo defaults to -O2; the CPU kernels want -O3.
string(REPLACE "-O2" "-O3" CMAKE_CXX_FLAGS_RELWITHDEBINFO "${CMAKE_CXX_FLAGS_RELWITHDEBINFO}")

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
  gtest_discover_tests(${name}
    PROPERTIES LABELS "${labels}"
               ENVIRONMENT "STRATA_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
    DISCOVERY_TIMEOUT 60)
endfunction()

// Picks the kernel table once per process from the CPU's features (and the STRATA_CPU_ISA
// environment variable, which may only lower the choice).
#include "kernels/cpu/isa.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <atomic>
#include <cstdlib>
#include <string_view>

#include "kernels/cpu/ops.h"

namespace strata::kernels::cpu {
namespace {

const IsaKernels* TableFor(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return Avx512Kernels();
    case Isa::kAvx2: return Avx2Kernels();
    case Isa::kScalar: return ScalarKernels();
  }
  return nullptr;
}

bool CpuHas(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  // __builtin_cpu_supports also checks that the OS saves the YMM/ZMM state. F16C (which
  // Clang's builtin does not know) is read from CPUID leaf 1; every AVX2 CPU has it anyway.
  __builtin_cpu_init();
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2: return avx2;
    case Isa::kAvx512:
      return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  }
  return false;
#else
  return isa == Isa::kScalar;
#endif
}

Isa BestIsa() {
  Isa best = Isa::kScalar;
  for (Isa isa : kAllIsas) {
    if (IsaSupported(isa)) best = isa;
  }
  if (const char* env = std::getenv("STRATA_CPU_ISA"); env != nullptr && *env != '\0') {
    for (Isa isa : kAllIsas) {
      if (std::string_view(env) == IsaName(isa) && IsaSupported(isa) && isa < best) return isa;
    }
  }
  return best;
}

std::atomic<const IsaKernels*>& ActiveSlot() {
  static std::atomic<const IsaKernels*> slot{TableFor(BestIsa())};
  return slot;
}

}  // namespace

#if !defined(STRATA_HAVE_X86_KERNELS)
const IsaKernels* Avx2Kernels() { return nullptr; }
const IsaKernels* Avx512Kernels() { return nullptr; }
#endif

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    case Isa::kScalar: return "scalar";
  }
  return "unknown";
}

bool IsaSupported(Isa isa) { return TableFor(isa) != nullptr && CpuHas(isa); }

const IsaKernels& ActiveKernels() { return *ActiveSlot().load(std::memory_order_relaxed); }

void SetIsaForTesting(Isa isa) {
  if (!IsaSupported(isa)) std::abort();
  ActiveSlot().store(TableFor(isa), std::memory_order_relaxed);
}

const char* ActiveIsa() { return ActiveKernels().name; }

}  // namespace strata::kernels::cpu

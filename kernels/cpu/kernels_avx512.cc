// The AVX-512 kernel table; this file is compiled with -mavx512{f,bw,vl,vnni} -mfma -mf16c and
// must only run where IsaSupported(Isa::kAvx512).
#include "kernels/cpu/simd_avx512.h"
// The traits header must come first: kernels_impl.h is written against it.
#include "kernels/cpu/kernels_impl.h"

namespace strata::kernels::cpu {

// Constant-initialised: no code of this unit runs until a kernel is called.
constexpr IsaKernels kTable = MakeKernels<Avx512Traits>();

const IsaKernels* Avx512Kernels() { return &kTable; }

}  // namespace strata::kernels::cpu

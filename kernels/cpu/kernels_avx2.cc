// The AVX2 kernel table; this file is compiled with -mavx2 -mfma -mf16c and must only run
// where IsaSupported(Isa::kAvx2).
#include "kernels/cpu/simd_avx2.h"
// The traits header must come first: kernels_impl.h is written against it.
#include "kernels/cpu/kernels_impl.h"

namespace strata::kernels::cpu {

// Constant-initialised: no code of this unit runs until a kernel is called.
constexpr IsaKernels kTable = MakeKernels<Avx2Traits>();

const IsaKernels* Avx2Kernels() { return &kTable; }

}  // namespace strata::kernels::cpu

// The portable kernel table, compiled with the baseline flags.
#include "kernels/cpu/simd_scalar.h"
// The traits header must come first: kernels_impl.h is written against it.
#include "kernels/cpu/kernels_impl.h"

namespace strata::kernels::cpu {

// Constant-initialised: no code of this unit runs until a kernel is called.
constexpr IsaKernels kTable = MakeKernels<ScalarTraits>();

const IsaKernels* ScalarKernels() { return &kTable; }

}  // namespace strata::kernels::cpu

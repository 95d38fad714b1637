#pragma once
// The right OpenBLAS kernels on every CPU (no Kokkos: compiled by the host compiler).
//
// OpenBLAS (DYNAMIC_ARCH, as Debian builds it) picks its kernels once, when the library is loaded,
// from the CPU model it recognises; a CPU newer than the library (e.g. an AVX-512 Xeon unknown to
// 0.3.21) silently gets the generic Prescott kernels, 4-5x slower. It reads OPENBLAS_CORETYPE at
// that moment, i.e. before main(). So main() calls select_blas_core() first: when OpenBLAS runs a
// pre-AVX2 core on a CPU with AVX2+FMA or AVX-512 and the user has not set OPENBLAS_CORETYPE, it sets
// OPENBLAS_CORETYPE to the best core for the CPU's features and re-executes the program (same
// process id, arguments and environment; before MPI and Kokkos start). A core OpenBLAS chose for a
// CPU family it knows (e.g. Haswell kernels on an AVX-512 AMD Zen) is left alone.
#include <string>
#include <string_view>

namespace sama::blas {

/// The instruction-set extensions that decide the OpenBLAS core (CPU and OS support, from cpuid and
/// xgetbv). All false on a non-x86 CPU.
struct CpuFeatures {
  bool avx = false, avx2 = false, fma = false;
  bool avx512f = false, avx512cd = false, avx512bw = false, avx512dq = false, avx512vl = false;
};
CpuFeatures cpu_features();

/// The vector class an OpenBLAS core name uses: 0 pre-AVX (Prescott, Core2, Nehalem, Atom, ...),
/// 1 AVX (Sandybridge, Bulldozer family), 2 AVX2+FMA (Haswell, Zen), 3 AVX-512 (SkylakeX, Cooperlake,
/// SapphireRapids); -1 for a name this table does not know (left alone). Case-insensitive.
int core_level(std::string_view core);

/// The OPENBLAS_CORETYPE to select, or "" to keep OpenBLAS's choice. A pure function of the CPU's
/// features, the core OpenBLAS runs and the user's OPENBLAS_CORETYPE (nullptr: unset): "" when the
/// user set one, when the running core is unknown or already uses AVX2; else "SkylakeX" on a CPU with
/// AVX-512 F/CD/BW/DQ/VL, "Haswell" on one with AVX2 and FMA, "" otherwise.
std::string choose_coretype(const CpuFeatures& cpu, std::string_view running_core, const char* user_coretype);

/// The core OpenBLAS runs now (openblas_get_corename), "" when the BLAS is not OpenBLAS.
std::string running_core();

/// Called first in main(), before MPI and Kokkos: may replace the process by itself with
/// OPENBLAS_CORETYPE set (execv of /proc/self/exe). Returns normally otherwise (also when exec fails:
/// the program then runs with OpenBLAS's own choice and reports it).
void select_blas_core(char** argv);

/// The kernel in use and who chose it, e.g. "Haswell (OpenBLAS's choice)", "SkylakeX (selected by
/// sama: OpenBLAS chose Prescott on an AVX-512 CPU)", "SkylakeX (OPENBLAS_CORETYPE)".
std::string blas_core_report();

}  // namespace sama::blas

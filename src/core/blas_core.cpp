#include "sama/core/blas_core.hpp"

#include <cblas.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace sama::blas {
namespace {

// Set (to OpenBLAS's own choice) in the re-executed process: marks OPENBLAS_CORETYPE as ours.
constexpr const char* kMarker = "SAMA_BLAS_CORE_REPLACED";

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

CpuFeatures cpu_features() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1;
  const bool avx_cpu = (c >> 28) & 1;
  const bool fma_cpu = (c >> 12) & 1;
  unsigned long long xcr0 = 0;
  if (osxsave) {
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
  }
  const bool ymm = (xcr0 & 0x6) == 0x6;     // the OS saves SSE and AVX state
  const bool zmm = (xcr0 & 0xE6) == 0xE6;   // ... and the opmask and ZMM state
  f.avx = avx_cpu && ymm;
  f.fma = fma_cpu && ymm;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.avx2 = ((b >> 5) & 1) && ymm;
    f.avx512f = ((b >> 16) & 1) && zmm;
    f.avx512dq = ((b >> 17) & 1) && zmm;
    f.avx512cd = ((b >> 28) & 1) && zmm;
    f.avx512bw = ((b >> 30) & 1) && zmm;
    f.avx512vl = ((b >> 31) & 1) && zmm;
  }
#endif
  return f;
}

int core_level(std::string_view core) {
  const std::string c = lower(core);
  for (const char* n : {"skylakex", "cooperlake", "sapphirerapids"})
    if (c == n) return 3;
  for (const char* n : {"haswell", "zen", "skylake"})
    if (c == n) return 2;
  for (const char* n : {"sandybridge", "bulldozer", "piledriver", "steamroller", "excavator"})
    if (c == n) return 1;
  for (const char* n : {"prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai", "coppermine",
                        "northwood", "banias", "opteron", "opteron_sse3", "barcelona", "bobcat", "nano", "generic"})
    if (c == n) return 0;
  return -1;
}

std::string choose_coretype(const CpuFeatures& cpu, std::string_view running_core, const char* user_coretype) {
  if (user_coretype != nullptr && *user_coretype != '\0') return "";  // the user's choice stands
  const int level = core_level(running_core);
  if (level < 0 || level >= 2) return "";  // not OpenBLAS, a core we do not know, or already AVX2
  if (cpu.avx512f && cpu.avx512cd && cpu.avx512bw && cpu.avx512dq && cpu.avx512vl) return "SkylakeX";
  if (cpu.avx2 && cpu.fma) return "Haswell";
  return "";
}

std::string running_core() {
#ifdef SAMA_HAVE_OPENBLAS
  const char* name = openblas_get_corename();
  return name != nullptr ? std::string(name) : std::string();
#else
  return "";
#endif
}

void select_blas_core(char** argv) {
  if (std::getenv(kMarker) != nullptr) return;  // already re-executed once
  const std::string want = choose_coretype(cpu_features(), running_core(), std::getenv("OPENBLAS_CORETYPE"));
  if (want.empty()) return;
  ::setenv(kMarker, running_core().c_str(), 1);
  ::setenv("OPENBLAS_CORETYPE", want.c_str(), 1);
  ::execv("/proc/self/exe", argv);
  // exec failed: run on with OpenBLAS's choice, and say so in the report.
  ::unsetenv("OPENBLAS_CORETYPE");
}

std::string blas_core_report() {
  const std::string core = running_core();
  if (core.empty()) return "not OpenBLAS";
  const char* replaced = std::getenv(kMarker);
  const char* user = std::getenv("OPENBLAS_CORETYPE");
  if (replaced != nullptr && user != nullptr)
    return lower(core) == lower(user)
               ? core + " (selected by sama from the CPU's features: OpenBLAS chose " + replaced + ")"
               : core + " (OpenBLAS ignored OPENBLAS_CORETYPE=" + user + " set by sama: not a DYNAMIC_ARCH build?)";
  if (user != nullptr && *user != '\0') return core + " (OPENBLAS_CORETYPE=" + user + ")";
  const std::string want = choose_coretype(cpu_features(), core, nullptr);
  if (replaced != nullptr || !want.empty())
    return core + " (OpenBLAS's choice; " + want + " would suit this CPU: set OPENBLAS_CORETYPE=" + want + ")";
  return core + " (OpenBLAS's choice)";
}

}  // namespace sama::blas

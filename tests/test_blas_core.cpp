// The OpenBLAS core decision (blas_core.hpp) with injected CPU features and core names: the machine
// running the test need not be one OpenBLAS mis-detects.
#include "sama/core/blas_core.hpp"

#include <gtest/gtest.h>

namespace {

using sama::blas::choose_coretype;
using sama::blas::core_level;
using sama::blas::CpuFeatures;

CpuFeatures sse_only() { return {}; }
CpuFeatures avx_only() {
  CpuFeatures f;
  f.avx = true;
  return f;
}
CpuFeatures avx2_fma() {
  CpuFeatures f = avx_only();
  f.avx2 = f.fma = true;
  return f;
}
CpuFeatures avx512() {
  CpuFeatures f = avx2_fma();
  f.avx512f = f.avx512cd = f.avx512bw = f.avx512dq = f.avx512vl = true;
  return f;
}

TEST(BlasCore, CoreLevels) {
  EXPECT_EQ(core_level("Prescott"), 0);
  EXPECT_EQ(core_level("NEHALEM"), 0);
  EXPECT_EQ(core_level("Sandybridge"), 1);
  EXPECT_EQ(core_level("Haswell"), 2);
  EXPECT_EQ(core_level("Zen"), 2);
  EXPECT_EQ(core_level("SkylakeX"), 3);
  EXPECT_EQ(core_level("cooperlake"), 3);
  EXPECT_EQ(core_level("NeoverseN1"), -1);
  EXPECT_EQ(core_level(""), -1);
}

// The case of the issue: an AVX-512 Xeon that OpenBLAS 0.3.21 does not know runs Prescott kernels.
TEST(BlasCore, GenericCoreOnAvx512SelectsSkylakeX) {
  EXPECT_EQ(choose_coretype(avx512(), "Prescott", nullptr), "SkylakeX");
  EXPECT_EQ(choose_coretype(avx512(), "Nehalem", nullptr), "SkylakeX");
  EXPECT_EQ(choose_coretype(avx512(), "Sandybridge", nullptr), "SkylakeX");
}

TEST(BlasCore, GenericCoreOnAvx2SelectsHaswell) {
  EXPECT_EQ(choose_coretype(avx2_fma(), "Prescott", nullptr), "Haswell");
  EXPECT_EQ(choose_coretype(avx2_fma(), "Sandybridge", nullptr), "Haswell");
  CpuFeatures partial = avx512();
  partial.avx512bw = false;  // AVX-512 F without BW: SkylakeX kernels need more than F
  EXPECT_EQ(choose_coretype(partial, "Prescott", nullptr), "Haswell");
  CpuFeatures no_fma = avx2_fma();
  no_fma.fma = false;
  EXPECT_EQ(choose_coretype(no_fma, "Prescott", nullptr), "");
}

TEST(BlasCore, UserChoiceIsRespected) {
  EXPECT_EQ(choose_coretype(avx512(), "Prescott", "Prescott"), "");
  EXPECT_EQ(choose_coretype(avx512(), "Prescott", "Haswell"), "");
  EXPECT_EQ(choose_coretype(avx512(), "Prescott", ""), "SkylakeX");  // empty counts as unset
}

TEST(BlasCore, KnownOrUnknownCoresAreLeftAlone) {
  EXPECT_EQ(choose_coretype(avx512(), "Haswell", nullptr), "");   // e.g. an AVX-512 Zen: OpenBLAS's call
  EXPECT_EQ(choose_coretype(avx512(), "SkylakeX", nullptr), "");
  EXPECT_EQ(choose_coretype(avx2_fma(), "Zen", nullptr), "");
  EXPECT_EQ(choose_coretype(avx512(), "NeoverseN1", nullptr), "");
  EXPECT_EQ(choose_coretype(avx512(), "", nullptr), "");  // not OpenBLAS
}

TEST(BlasCore, OldCpusKeepTheGenericCore) {
  EXPECT_EQ(choose_coretype(sse_only(), "Prescott", nullptr), "");
  EXPECT_EQ(choose_coretype(avx_only(), "Prescott", nullptr), "");
}

TEST(BlasCore, ThisMachine) {
  // Whatever runs the test: the report names the running core, and the decision for it is stable
  // (after a selection, OPENBLAS_CORETYPE is set and nothing more is chosen).
  const std::string core = sama::blas::running_core();
  const std::string report = sama::blas::blas_core_report();
  if (core.empty()) {
    EXPECT_EQ(report, "not OpenBLAS");
  } else {
    EXPECT_EQ(report.rfind(core, 0), 0u) << report;
    const std::string want = choose_coretype(sama::blas::cpu_features(), core, nullptr);
    if (!want.empty()) EXPECT_EQ(choose_coretype(sama::blas::cpu_features(), want, nullptr), "");
  }
}

}  // namespace

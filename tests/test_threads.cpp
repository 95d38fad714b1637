// The threads-per-rank decision (threads.hpp) with injected environment values and machines.
#include "sama/core/threads.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using sama::threads::Environment;
using sama::threads::Machine;
using sama::threads::parse_thread_count;
using sama::threads::plan;

Machine serial(int ranks = 1, int cpus = 2, int bound = 2) {
  Machine m;
  m.kokkos_concurrency = 1;
  m.kokkos_host_parallel = false;
  m.ranks_on_node = ranks;
  m.node_cpus = cpus;
  m.bound_cpus = bound;
  return m;
}

Machine openmp(int concurrency, int ranks = 1, int cpus = 16, int bound = 16) {
  Machine m = serial(ranks, cpus, bound);
  m.kokkos_concurrency = concurrency;
  m.kokkos_host_parallel = true;
  return m;
}

bool mentions(const std::vector<std::string>& warnings, const std::string& what) {
  for (const auto& w : warnings)
    if (w.find(what) != std::string::npos) return true;
  return false;
}

TEST(Threads, ParseThreadCount) {
  EXPECT_EQ(parse_thread_count("1"), 1);
  EXPECT_EQ(parse_thread_count("16"), 16);
  EXPECT_EQ(parse_thread_count(" 4 "), 4);
  EXPECT_EQ(parse_thread_count("4,2"), 4);  // OpenMP nesting list: the outermost level
  EXPECT_EQ(parse_thread_count(""), 0);
  EXPECT_EQ(parse_thread_count("0"), 0);
  EXPECT_EQ(parse_thread_count("-2"), 0);
  EXPECT_EQ(parse_thread_count("2x"), 0);
  EXPECT_EQ(parse_thread_count("abc"), 0);
  EXPECT_EQ(parse_thread_count("99999999999999999999"), 0);
}

// Nothing set: one thread per rank on the Serial build, as before; no warning even with more ranks
// than CPUs (that is the launcher's --oversubscribe).
TEST(Threads, DefaultIsOnePerRank) {
  const auto p = plan(Environment{}, serial());
  EXPECT_EQ(p.threads_per_rank, 1);
  EXPECT_EQ(p.blas_threads, 1);
  EXPECT_TRUE(p.warnings.empty());
  const auto over = plan(Environment{}, serial(/*ranks=*/3, /*cpus=*/2, /*bound=*/1));
  EXPECT_EQ(over.blas_threads, 1);
  EXPECT_TRUE(over.warnings.empty());
}

// Serial Kokkos + threaded BLAS: OMP_NUM_THREADS sets the BLAS threads.
TEST(Threads, OmpNumThreadsSetsBlasThreads) {
  Environment e;
  e.omp_num_threads = "2";
  const auto p = plan(e, serial());
  EXPECT_EQ(p.threads_per_rank, 2);
  EXPECT_EQ(p.blas_threads, 2);
  EXPECT_EQ(p.source, "OMP_NUM_THREADS=2");
  EXPECT_TRUE(p.warnings.empty());
}

TEST(Threads, SlurmCpusPerTaskWhenOmpUnset) {
  Environment e;
  e.slurm_cpus_per_task = "4";
  auto p = plan(e, serial(/*ranks=*/4, /*cpus=*/16, /*bound=*/4));
  EXPECT_EQ(p.threads_per_rank, 4);
  EXPECT_EQ(p.blas_threads, 4);
  EXPECT_EQ(p.source, "SLURM_CPUS_PER_TASK=4");
  EXPECT_TRUE(p.warnings.empty());
  e.omp_num_threads = "2";  // OMP_NUM_THREADS wins
  p = plan(e, serial(4, 16, 4));
  EXPECT_EQ(p.threads_per_rank, 2);
  EXPECT_EQ(p.source, "OMP_NUM_THREADS=2");
}

TEST(Threads, OpenblasNumThreadsOverridesBlasOnly) {
  Environment e;
  e.omp_num_threads = "4";
  e.openblas_num_threads = "1";
  const auto p = plan(e, serial(1, 16, 16));
  EXPECT_EQ(p.threads_per_rank, 4);
  EXPECT_EQ(p.blas_threads, 1);
  EXPECT_EQ(p.blas_source, "OPENBLAS_NUM_THREADS=1");
}

TEST(Threads, InvalidValuesAreIgnoredWithAWarning) {
  Environment e;
  e.omp_num_threads = "lots";
  e.slurm_cpus_per_task = "3";
  const auto p = plan(e, serial(1, 16, 16));
  EXPECT_EQ(p.threads_per_rank, 3);
  EXPECT_TRUE(mentions(p.warnings, "OMP_NUM_THREADS='lots'"));
  Environment z;
  z.omp_num_threads = "0";
  const auto q = plan(z, serial());
  EXPECT_EQ(q.threads_per_rank, 1);
  EXPECT_TRUE(mentions(q.warnings, "OMP_NUM_THREADS='0'"));
}

// An OpenMP Kokkos with nothing set: BLAS follows the threads Kokkos started.
TEST(Threads, OpenMPKokkosPoolIsTheDefault) {
  const auto p = plan(Environment{}, openmp(8));
  EXPECT_EQ(p.threads_per_rank, 8);
  EXPECT_EQ(p.blas_threads, 8);
  EXPECT_TRUE(p.warnings.empty());
}

TEST(Threads, KokkosPoolDifferentFromTheRequestWarns) {
  Environment e;
  e.slurm_cpus_per_task = "4";
  const auto p = plan(e, openmp(16, 1, 16, 16));  // Kokkos took every CPU; Slurm reserved 4
  EXPECT_EQ(p.blas_threads, 4);
  EXPECT_TRUE(mentions(p.warnings, "Kokkos runs 16 threads"));
}

TEST(Threads, OversubscribedNodeWarns) {
  Environment e;
  e.omp_num_threads = "2";
  const auto p = plan(e, serial(/*ranks=*/2, /*cpus=*/2, /*bound=*/1));
  EXPECT_EQ(p.blas_threads, 2);  // as asked: a warning, not a change
  EXPECT_TRUE(mentions(p.warnings, "oversubscribed"));
  const auto fits = plan(e, serial(/*ranks=*/1, /*cpus=*/2, /*bound=*/2));
  EXPECT_TRUE(fits.warnings.empty());
  Machine unknown = serial(2, /*cpus=*/0, /*bound=*/0);  // nothing known: nothing to say
  EXPECT_TRUE(plan(e, unknown).warnings.empty());
}

// mpirun binds a rank to one core by default: two threads on it share it.
TEST(Threads, BoundToFewerCpusWarns) {
  Environment e;
  e.omp_num_threads = "2";
  const auto p = plan(e, serial(/*ranks=*/1, /*cpus=*/16, /*bound=*/1));
  EXPECT_TRUE(mentions(p.warnings, "bound to 1 CPU"));
}

TEST(Threads, Describe) {
  Environment e;
  e.omp_num_threads = "2";
  const auto p = plan(e, serial());
  EXPECT_EQ(sama::threads::describe(p, "Serial", 1, 2),
            "2 per rank (OMP_NUM_THREADS=2): Kokkos Serial concurrency 1, BLAS 2 thread(s)");
  EXPECT_EQ(sama::threads::describe(sama::threads::Plan{}, "Serial", 1, 1),
            "1 per rank (default: one per rank): Kokkos Serial concurrency 1, BLAS 1 thread(s)");
}

}  // namespace

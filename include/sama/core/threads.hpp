#pragma once
// Threads per MPI rank (hybrid MPI + threads on CPU nodes); no Kokkos: compiled by the host compiler.
//
// One decision, made once in main() after Kokkos and MPI start, from the environment and what Kokkos
// and the node report:
//
//   threads per rank  1. OMP_NUM_THREADS, a positive integer (the first entry of a list such as "4,2",
//                        the outermost OpenMP level);
//                     2. else SLURM_CPUS_PER_TASK (set by Slurm when the job asks for --cpus-per-task:
//                        the cores Slurm reserved for each rank);
//                     3. else the Kokkos execution space's concurrency: 1 with the Serial back end, so
//                        with nothing set a rank uses one core, as before (ranks = cores never
//                        oversubscribes); with OpenMP, the threads Kokkos started.
//   BLAS threads      OPENBLAS_NUM_THREADS when set (OpenBLAS's own variable), else the threads per
//                     rank. Serial Kokkos + threaded BLAS is a valid hybrid: the GEMMs run on all the
//                     rank's threads, the element-wise kernels on one.
//
// A value that is not a positive integer is ignored with a warning. Warnings (never errors) also
// when the Kokkos thread pool differs from the threads per rank, and, when a rank runs more than one
// thread, when the ranks on this node times the threads per rank exceed the node's CPUs or this rank
// runs more threads than the CPUs it is bound to (e.g. under `mpirun -np 2`, which binds each rank to
// one core by default). More single-threaded ranks than CPUs is the launcher's (--oversubscribe).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sama::threads {

/// The environment variables the decision reads (std::nullopt: unset). Injected in tests.
struct Environment {
  std::optional<std::string> omp_num_threads, slurm_cpus_per_task, openblas_num_threads;
  static Environment from_process();  // reads getenv
};

/// What the program knows about its execution resources (0 where unknown).
struct Machine {
  int kokkos_concurrency = 1;        // ExecSpace().concurrency()
  bool kokkos_host_parallel = false; // a host back end with its own thread pool (OpenMP, Threads)
  int ranks_on_node = 1;             // MPI ranks sharing this node (MPI_COMM_TYPE_SHARED)
  int node_cpus = 0;                 // logical CPUs online on the node
  int bound_cpus = 0;                // CPUs in this process's affinity mask
};

struct Plan {
  int threads_per_rank = 1;
  int blas_threads = 1;
  std::string source = "default: one per rank";  // where threads_per_rank came from, e.g. "OMP_NUM_THREADS=2"
  std::string blas_source = "threads per rank";  // where blas_threads came from
  std::vector<std::string> warnings;  // printed once by rank 0
};

/// A thread count: a positive integer, optionally followed by ",..." (an OpenMP nesting list) and
/// surrounded by blanks. 0 when the text is not one (empty, "abc", "0", "-2", "2x", overflow).
int parse_thread_count(std::string_view text);

/// The decision described above; a pure function of its arguments.
Plan plan(const Environment& env, const Machine& machine);

/// CPUs online on this node and in this process's affinity mask (0 where the call fails).
int online_cpus();
int affinity_cpus();

/// The plan main() applied (set_applied), for `sama info`, the run header, summary.json and bench.
/// Before main() applies one (e.g. in the unit tests), the default plan.
const Plan& applied();
void set_applied(const Plan& p);

/// One line for logs: "2 per rank (OMP_NUM_THREADS=2): Kokkos Serial concurrency 1, BLAS 2 threads".
std::string describe(const Plan& p, std::string_view kokkos_space, int kokkos_concurrency, int blas_threads);

}  // namespace sama::threads

#include "sama/core/threads.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <sched.h>
#include <unistd.h>

namespace sama::threads {
namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

Plan g_applied;

}  // namespace

Environment Environment::from_process() {
  Environment e;
  e.omp_num_threads = env("OMP_NUM_THREADS");
  e.slurm_cpus_per_task = env("SLURM_CPUS_PER_TASK");
  e.openblas_num_threads = env("OPENBLAS_NUM_THREADS");
  return e;
}

int parse_thread_count(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  long value = 0;
  std::size_t digits = 0;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i, ++digits) {
    value = value * 10 + (text[i] - '0');
    if (value > INT_MAX) return 0;
  }
  if (digits == 0 || value <= 0) return 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  if (i < text.size() && text[i] != ',') return 0;  // "2,1": the outermost level; "2x": not a count
  return static_cast<int>(value);
}

Plan plan(const Environment& e, const Machine& m) {
  Plan p;
  const int kokkos = m.kokkos_concurrency > 0 ? m.kokkos_concurrency : 1;
  auto take = [&](const std::optional<std::string>& v, const char* name) {
    if (!v) return 0;
    const int n = parse_thread_count(*v);
    if (n == 0) p.warnings.push_back(fmt::format("{}='{}' is not a positive thread count: ignored", name, *v));
    return n;
  };
  if (const int n = take(e.omp_num_threads, "OMP_NUM_THREADS"); n > 0) {
    p.threads_per_rank = n;
    p.source = fmt::format("OMP_NUM_THREADS={}", n);
  } else if (const int c = take(e.slurm_cpus_per_task, "SLURM_CPUS_PER_TASK"); c > 0) {
    p.threads_per_rank = c;
    p.source = fmt::format("SLURM_CPUS_PER_TASK={}", c);
  } else {
    p.threads_per_rank = kokkos;
    p.source = m.kokkos_host_parallel ? fmt::format("the Kokkos thread pool ({})", kokkos)
                                      : std::string("default: one per rank");
  }
  if (const int b = take(e.openblas_num_threads, "OPENBLAS_NUM_THREADS"); b > 0) {
    p.blas_threads = b;
    p.blas_source = fmt::format("OPENBLAS_NUM_THREADS={}", b);
  } else {
    p.blas_threads = p.threads_per_rank;
    p.blas_source = "threads per rank";
  }
  if (m.kokkos_host_parallel && kokkos != p.threads_per_rank)
    p.warnings.push_back(fmt::format(
        "Kokkos runs {} threads per rank but {} asks for {}: set OMP_NUM_THREADS (Kokkos reads it at start)", kokkos,
        p.source, p.threads_per_rank));
  // The threads a rank keeps busy: Kokkos' pool and the BLAS's share the rank's cores, so the larger.
  const int busy = std::max({p.threads_per_rank, p.blas_threads, m.kokkos_host_parallel ? kokkos : 1});
  const int ranks = m.ranks_on_node > 0 ? m.ranks_on_node : 1;
  // More single-threaded ranks than CPUs is the launcher's choice (mpirun --oversubscribe), not this one's.
  if (busy == 1) return p;
  if (m.node_cpus > 0 && static_cast<long>(ranks) * busy > m.node_cpus)
    p.warnings.push_back(fmt::format(
        "{} rank(s) on this node x {} thread(s) per rank = {} threads on {} CPUs: oversubscribed (set "
        "OMP_NUM_THREADS to at most CPUs / ranks per node)",
        ranks, busy, static_cast<long>(ranks) * busy, m.node_cpus));
  else if (m.bound_cpus > 0 && busy > m.bound_cpus)
    p.warnings.push_back(fmt::format(
        "this rank runs {} threads but is bound to {} CPU(s): they share them (bind each rank to its threads' "
        "cores: srun --cpus-per-task={} --cpu-bind=cores, or mpirun --map-by slot:PE={} / --bind-to none)",
        busy, m.bound_cpus, busy, busy));
  return p;
}

int online_cpus() {
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 && n < INT_MAX ? static_cast<int>(n) : 0;
}

int affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
  return CPU_COUNT(&set);
}

const Plan& applied() { return g_applied; }
void set_applied(const Plan& p) { g_applied = p; }

std::string describe(const Plan& p, std::string_view kokkos_space, int kokkos_concurrency, int blas_threads) {
  std::string s = fmt::format("{} per rank ({}): Kokkos {} concurrency {}, BLAS {} thread(s)", p.threads_per_rank,
                              p.source, kokkos_space, kokkos_concurrency, blas_threads);
  if (p.blas_source != "threads per rank" && !p.blas_source.empty()) s += fmt::format(" ({})", p.blas_source);
  return s;
}

}  // namespace sama::threads

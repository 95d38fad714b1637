#pragma once
// The `sama` subcommands, callable from main() and from tests.
#include "sama/comm/communicator.hpp"

#include <iosfwd>
#include <string>
#include <vector>

namespace sama::app {

struct TrainArgs {
  std::string deck;
  std::string out;  // "" = runs/<deck stem>
  std::vector<std::string> set;
  std::string resume;  // "" (fresh run), a run directory, or "auto" (resume --out if it has a checkpoint)
  bool overwrite = false;  // a fresh run may replace a completed or interrupted run in --out
};
/// `sama train`: returns the process exit code (0, or kExitRequeue after a stop on request).
int run_train(const TrainArgs& args, const comm::Communicator& comm, std::ostream& log);

/// Decides the threads per rank (threads::plan) from the environment, Kokkos and the node, sets the
/// BLAS threads, records the plan (threads::applied) and prints its warnings on rank 0. Collective.
void configure_threads(const comm::Communicator& comm, std::ostream& err);
/// The threads line of `sama info`, the run header and bench: the applied plan, Kokkos' concurrency
/// and the BLAS threads in effect.
std::string threads_report();

/// `sama info`: version, commit, Kokkos, BLAS, MPI, HDF5, CUDA support.
void print_info(std::ostream& out);

struct BenchArgs {
  std::string json;      // write JSON records here ("" = none)
  long steps = 60;       // timed steps per configuration
  long warmup = 10;
  bool hypergradients = false;  // compare the hypergradient methods instead (run_bench_hypergradients)
  bool counters = true;  // count Kokkos' allocations, copies and kernels per step (its tool callbacks)
  std::vector<std::string> hidden;   // MLP hidden widths to run, e.g. "256,256" (empty: 256,256 and 100)
  std::vector<std::string> methods;  // none and/or sama (empty: both); resnet: also cg and unrolled (K = 5)
  std::string model = "mlp";         // "mlp" or "resnet" (ResNet-8, width 16, on 1×28×28 images)
  long resnet_width = 16;
  long resnet_depth = 8;
};
/// `sama bench`: throughput, memory and GEMM efficiency of `none` and `sama` at two MLP sizes.
int run_bench(const BenchArgs& args, const comm::Communicator& comm, std::ostream& out);
/// `sama bench --hypergradients`: every meta.method (K = 1 and 5 where it has one) at two MLP sizes:
/// iterations/s and peak RSS (also relative to none), cosine to a CG reference, SAMA's meta step against
/// its FLOP-count prediction, and unrolled's peak RSS against K.
int run_bench_hypergradients(const BenchArgs& args, const comm::Communicator& comm, std::ostream& out);

}  // namespace sama::app

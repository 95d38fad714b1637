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
};
/// `sama train`: returns the process exit code (0, or kExitRequeue after a stop on request).
int run_train(const TrainArgs& args, const comm::Communicator& comm, std::ostream& log);

/// `sama info`: version, commit, Kokkos, BLAS, MPI, HDF5, CUDA support.
void print_info(std::ostream& out);

struct BenchArgs {
  std::string json;      // write JSON records here ("" = none)
  long steps = 60;       // timed steps per configuration
  long warmup = 10;
};
/// `sama bench`: throughput, memory and GEMM efficiency of `none` and `sama` at two MLP sizes.
int run_bench(const BenchArgs& args, const comm::Communicator& comm, std::ostream& out);

}  // namespace sama::app

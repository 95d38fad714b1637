// sama: scalable meta learning (SAMA) as an SPMD program.
#include "sama/app/commands.hpp"
#include "sama/app/preemption.hpp"
#include "sama/comm/communicator.hpp"
#include "sama/core/error.hpp"
#include "sama/core/gemm.hpp"
#include "sama/io/h5.hpp"

#include <CLI/CLI.hpp>
#include <Kokkos_Core.hpp>

#include <iostream>

int main(int argc, char** argv) {
  sama::comm::Environment mpi(argc, argv);
  int code = 0;
  {
    // Kokkos sees no command-line arguments (its own --help would shadow ours); it still reads its
    // KOKKOS_* environment variables (e.g. KOKKOS_DEVICE_ID on GPU nodes).
    int kokkos_argc = 1;
    Kokkos::ScopeGuard kokkos(kokkos_argc, argv);
    sama::blas_set_threads(1);  // one core per rank: ranks, not BLAS threads, use the cores
    sama::io::silence_errors();
    sama::comm::Communicator comm;

    CLI::App app{"sama: scalable meta learning (SAMA) for data reweighting and pruning"};
    app.require_subcommand(1);
    sama::app::TrainArgs train;
    auto* train_cmd = app.add_subcommand("train", "train from an input deck");
    train_cmd->add_option("deck", train.deck, "input deck (TOML)")->required();
    train_cmd->add_option("--out", train.out, "run directory (default: runs/<deck name>)");
    train_cmd->add_option("--set", train.set, "override a deck key: section.key=value (repeatable)");
    train_cmd->add_option("--resume", train.resume,
                          "continue from the newest good checkpoint of this run directory, or 'auto': "
                          "resume --out if it holds a checkpoint, else start afresh");
    auto* info_cmd = app.add_subcommand("info", "print version and build configuration");
    sama::app::BenchArgs bench;
    auto* bench_cmd = app.add_subcommand("bench", "benchmark throughput, memory and GEMM efficiency");
    bench_cmd->add_option("--json", bench.json, "write JSON records to this file");
    bench_cmd->add_option("--steps", bench.steps, "timed steps per configuration")->check(CLI::PositiveNumber);
    bench_cmd->add_option("--warmup", bench.warmup, "untimed steps per configuration")->check(CLI::NonNegativeNumber);

    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      code = comm.rank() == 0 ? app.exit(e) : (e.get_exit_code() ? 2 : 0);
      return code == 0 ? 0 : 2;
    }
    try {
      if (*train_cmd) {
        sama::app::install_stop_handlers();  // SIGUSR1/SIGTERM: checkpoint, then exit 75 (requeue)
        code = sama::app::run_train(train, comm, std::cout);
      }
      else if (*info_cmd) {
        if (comm.rank() == 0) sama::app::print_info(std::cout);
      } else if (*bench_cmd) code = sama::app::run_bench(bench, comm, std::cout);
    } catch (const std::exception& e) {
      std::cerr << "sama: error on rank " << comm.rank() << ": " << e.what() << std::endl;
      if (comm.size() > 1) comm.abort(1);
      code = 1;
    }
  }
  return code;
}

// sama: scalable meta learning (SAMA) as an SPMD program.
#include "sama/app/commands.hpp"
#include "sama/app/preemption.hpp"
#include "sama/app/prune.hpp"
#include "sama/comm/communicator.hpp"
#include "sama/core/blas_core.hpp"
#include "sama/core/error.hpp"
#include "sama/core/gemm.hpp"
#include "sama/io/h5.hpp"

#include <CLI/CLI.hpp>
#include <chrono>
#include <thread>
#include <Kokkos_Core.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>

int main(int argc, char** argv) {
  // First, before MPI and Kokkos: may re-execute with OPENBLAS_CORETYPE set (blas_core.hpp).
  sama::blas::select_blas_core(argv);
  sama::app::note_launcher();  // before MPI_Init (which sets OMPI_* in a singleton too)
  sama::comm::Environment mpi(argc, argv);
  int code = 0;
  {
    // Kokkos sees no command-line arguments (its own --help would shadow ours); it still reads its
    // KOKKOS_* environment variables (e.g. KOKKOS_DEVICE_ID on GPU nodes).
    int kokkos_argc = 1;
    Kokkos::ScopeGuard kokkos(kokkos_argc, argv);
    sama::io::silence_errors();
    sama::comm::Communicator comm;
    // Threads per rank (threads.hpp): 1 unless OMP_NUM_THREADS or SLURM_CPUS_PER_TASK asks for more.
    sama::app::configure_threads(comm, std::cerr);

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
    train_cmd->add_flag("--overwrite", train.overwrite,
                        "start afresh even if --out holds a completed or interrupted run (its outputs and "
                        "checkpoints are deleted)");
    auto* info_cmd = app.add_subcommand("info", "print version and build configuration");
    sama::app::BenchArgs bench;
    auto* bench_cmd = app.add_subcommand("bench", "benchmark throughput, memory and GEMM efficiency");
    bench_cmd->add_option("--json", bench.json, "write JSON records to this file");
    bench_cmd->add_option("--steps", bench.steps, "timed steps per configuration")->check(CLI::PositiveNumber);
    bench_cmd->add_option("--warmup", bench.warmup, "untimed steps per configuration")->check(CLI::NonNegativeNumber);
    bench_cmd->add_option("--hidden", bench.hidden,
                          "hidden widths of an MLP to run, e.g. 256,256 (repeatable; default: 256,256 and 100)");
    bench_cmd->add_option("--method", bench.methods,
                          "none or sama; with --model resnet also cg and unrolled, K = 5 (repeatable; default: none and "
                          "sama, and for resnet cg and unrolled too)");
    bench_cmd->add_option("--model", bench.model, "mlp (784-H-10) or resnet (CIFAR-style, 1x28x28 inputs)")
        ->check(CLI::IsMember({"mlp", "resnet"}));
    bench_cmd->add_option("--resnet-width", bench.resnet_width, "resnet: channels of the first stage")
        ->check(CLI::PositiveNumber);
    bench_cmd->add_option("--resnet-depth", bench.resnet_depth, "resnet: depth 6n + 2 (8, 14, 20, ...)")
        ->check(CLI::PositiveNumber);
    bench_cmd->footer(
        "Threads per rank as for train: OMP_NUM_THREADS, else SLURM_CPUS_PER_TASK, else 1 (Serial Kokkos); the "
        "BLAS runs that many threads. Under mpirun the global batch of 128 is split between the ranks.");
    bench_cmd->add_flag("--hypergradients", bench.hypergradients,
                        "compare the hypergradient methods (none, sama, sama_jvp, finite_difference, neumann, cg, "
                        "unrolled at K = 1 and 5): speed, memory, cosine to a CG reference");
    bench_cmd->add_flag("!--no-counters", bench.counters,
                        "do not count Kokkos' View allocations, deep copies and kernel launches per step (counting "
                        "sets Kokkos tool callbacks; with Kokkos 4 these add a fence per kernel, which slows a GPU)");

    sama::app::PruneArgs prune;
    auto* prune_cmd = app.add_subcommand("prune", "write a keep mask (data pruning) from a run's per-sample scores");
    prune_cmd->add_option("--scores", prune.scores, "scores.h5 of a training run")->required();
    prune_cmd->add_option("--by", prune.by, "score to rank by: meta_weight, meta_log_weight, meta_weight_envelope, el2n, grand, forgetting, loss or random")
        ->required();
    prune_cmd->add_option("--keep", prune.keep, "fraction of the training samples kept, in (0, 1]")->required();
    prune_cmd->add_flag("--class-balanced", prune.class_balanced, "rank within each observed class");
    prune_cmd->add_option("--seed", prune.seed, "seed of --by random (default 1)");
    prune_cmd->add_option("--out", prune.out, "the mask file to write (HDF5)")->required();
    prune_cmd->footer(sama::app::prune_help());

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
      } else if (*bench_cmd) code = bench.hypergradients ? sama::app::run_bench_hypergradients(bench, comm, std::cout)
                                   : sama::app::run_bench(bench, comm, std::cout);
      else if (*prune_cmd && comm.rank() == 0) code = sama::app::run_prune(prune, std::cout);  // serial
    } catch (const std::exception& e) {
      std::cerr << "sama: error on rank " << comm.rank() << ": " << e.what() << std::endl;
      if (comm.size() > 1) {
        // mpirun forwards a rank's stderr asynchronously, and MPI_Abort can end the job before the
        // message above reaches it (seen once in a loaded test run): give the forwarder a moment.
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        comm.abort(1);
      }
      // HDF5 may still hold an id whose close failed (disk full): its clean-up at MPI_Finalize or at
      // exit would crash (H5F__close_cb). The error is reported and nothing is left to write: end here.
      if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) > 0) {
        std::fflush(nullptr);
        std::_Exit(1);
      }
      code = 1;
    }
  }
  return code;
}

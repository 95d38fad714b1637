#include "sama/app/commands.hpp"

#include "sama/app/deck.hpp"
#include "sama/app/preemption.hpp"
#include "sama/app/trainer.hpp"
#include "sama/core/error.hpp"
#include "sama/comm/gradient_reducer.hpp"
#include "sama/build_info.hpp"
#include "sama/core/blas_core.hpp"
#include "sama/core/gemm.hpp"
#include "sama/core/threads.hpp"
#include "sama/core/types.hpp"

#include <fmt/format.h>
#include <hdf5.h>

#include <csignal>
#include <filesystem>
#include <ostream>
#include <type_traits>

namespace sama::app {

int run_train(const TrainArgs& args, const comm::Communicator& comm, std::ostream& log) {
  const Deck deck = load_deck(args.deck, args.set);
  if (comm.rank() == 0)
    for (const auto& note : deck.notes) log << "sama: warning: " << note << "\n";
  std::string out = args.out;
  RunOptions opt;
  if (args.resume == "auto") {
    opt.resume_if_present = true;
  } else if (!args.resume.empty()) {
    opt.resume = true;
    if (out.empty()) out = args.resume;
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::exists(args.resume, ec) || !fs::equivalent(out, args.resume, ec))
      fail("--resume '{}' must be the run directory (--out '{}') whose checkpoints continue", args.resume, out);
  }
  if (out.empty()) out = (std::filesystem::path("runs") / std::filesystem::path(args.deck).stem()).string();
  opt.out_dir = out;
  opt.overwrite = args.overwrite;
  if (args.overwrite && !args.resume.empty()) fail("--overwrite starts afresh: it cannot be combined with --resume");
  opt.log = &log;
  const RunResult r = train(deck, opt, comm);
  if (r.preempted) return r.stop_reason == SIGINT ? kExitInterrupted : kExitRequeue;
  if (comm.rank() == 0)
    log << fmt::format("sama: done: final test accuracy {:.4f} (best {:.4f}), {:.0f} samples/s, peak RSS {:.1f} MB; "
                       "results in {}\n",
                       r.final_test_accuracy, r.best_test_accuracy, r.samples_per_second, r.peak_rss_mb, out);
  return 0;
}

void configure_threads(const comm::Communicator& comm, std::ostream& err) {
  threads::Machine m;
  m.kokkos_concurrency = ExecSpace().concurrency();
#if defined(KOKKOS_ENABLE_CUDA) || defined(KOKKOS_ENABLE_HIP) || defined(KOKKOS_ENABLE_SYCL)
  m.kokkos_host_parallel = false;  // a device back end: its concurrency is not host threads
  m.kokkos_concurrency = 1;
#elif defined(KOKKOS_ENABLE_SERIAL)
  m.kokkos_host_parallel = !std::is_same_v<ExecSpace, Kokkos::Serial>;
#else
  m.kokkos_host_parallel = true;
#endif
  m.ranks_on_node = comm.ranks_on_node();
  m.node_cpus = threads::online_cpus();
  m.bound_cpus = threads::affinity_cpus();
  threads::Plan p = threads::plan(threads::Environment::from_process(), m);
  blas_set_threads(p.blas_threads);
  const int got = blas_threads();
  if (got > 0 && got != p.blas_threads)
    p.warnings.push_back(fmt::format("the BLAS ({}) runs {} thread(s), not the {} asked for", blas_threading(), got,
                                     p.blas_threads));
  threads::set_applied(p);
  if (comm.rank() == 0)
    for (const auto& w : p.warnings) err << "sama: warning: threads: " << w << "\n";
}

std::string threads_report() {
  const int kokkos = ExecSpace().concurrency();
  return threads::describe(threads::applied(), ExecSpace::name(), kokkos, blas_threads());
}

void print_info(std::ostream& out) {
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
#ifdef SAMA_HDF5_PARALLEL
  const bool h5_parallel = true;
#else
  const bool h5_parallel = false;
#endif
#ifdef KOKKOS_ENABLE_CUDA
  const bool cuda = true;
#else
  const bool cuda = false;
#endif
#ifdef SAMA_HAVE_CUBLAS
  const bool cublas = true;
#else
  const bool cublas = false;
#endif
#ifdef SAMA_HAVE_NCCL
  const bool nccl = true;
#else
  const bool nccl = false;
#endif
  const int kv = KOKKOS_VERSION;
  out << fmt::format("sama {}\n", build::version);
  out << fmt::format("  git commit        {}\n", build::git_commit);
  out << fmt::format("  build             {} ({})\n", build::build_type, build::compiler);
  out << fmt::format("  Kokkos            {}.{}.{}, execution space {}\n", kv / 10000, (kv / 100) % 100, kv % 100,
                     ExecSpace::name());
  out << fmt::format("  BLAS              {} [{}]\n", blas_description(), build::blas_library);
  out << fmt::format("  BLAS core         {}\n", blas::blas_core_report());
  out << fmt::format("  BLAS threading    {}\n", blas_threading());
  out << fmt::format("  threads           {}\n", threads_report());
  out << fmt::format("  MPI               {}\n", comm::Environment::library_version());
  out << fmt::format("  HDF5              {}.{}.{} ({})\n", maj, min, rel, h5_parallel ? "parallel" : "serial");
  out << fmt::format("  CUDA              {}\n", cuda ? "yes (Kokkos CUDA back end)" : "no");
  out << fmt::format("  cuBLAS            {}\n", cublas ? "yes" : "no");
  out << fmt::format("  NCCL              {}\n",
                     nccl ? fmt::format("yes (gradient reducer; {} GPU(s) visible)", comm::visible_gpus()) : "no");
}

}  // namespace sama::app

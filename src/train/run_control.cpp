// Run control (run_control.hpp): the per-step agreement, stops on request, faults injected by debug.*.
#include "sama/train/run_control.hpp"

#include "sama/app/preemption.hpp"
#include "sama/core/error.hpp"

#include <fmt/format.h>

#include <mpi.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace sama::training {

std::string stop_reason_text(int reason) {
  if (reason == kStopDebug) return "debug.preempt_step";
  if (reason == kStopBudget) return "wall-time budget (checkpoint.wall_time_minutes)";
  const char* name = reason == SIGUSR1 ? "SIGUSR1" : reason == SIGTERM ? "SIGTERM" : reason == SIGINT ? "SIGINT" : nullptr;
  return name ? fmt::format("{} received", name) : fmt::format("signal {} received", reason);
}

void RunControl::inject_failure(long step) const {
  if (step == deck_.debug.fail_step && comm_.rank() == deck_.debug.fail_rank)
    fail("failure injected by debug.fail_step/debug.fail_rank");
}

double RunControl::inject_nan(long step, double loss_sum) const {
  const auto& d = deck_.debug;
  if (comm_.rank() == d.nan_rank && step >= d.nan_step && step < d.nan_step + d.nan_count)
    return std::numeric_limits<double>::quiet_NaN();
  return loss_sum;
}

Control RunControl::agree(long step, bool nonfinite) {
  const auto& ck = deck_.checkpoint;
  const double budget_s = 60.0 * ck.wall_time_minutes;
  const int stop = app::stop_signal() != 0                                             ? app::stop_signal()
                   : step == deck_.debug.preempt_step                                  ? kStopDebug
                   : budget_s > 0 && comm_.rank() == 0 && wall_.seconds() >= budget_s ? kStopBudget
                                                                                       : 0;
  const bool time_due =
      ck.every_minutes > 0 && comm_.rank() == 0 && since_checkpoint_.seconds() >= 60.0 * ck.every_minutes;
  std::array<int, 4> f{nonfinite ? 1 : 0, stop, time_due ? 1 : 0, app::launcher_gone() ? 1 : 0};
  if (comm_.size() > 1)
    comm::check_mpi(MPI_Allreduce(MPI_IN_PLACE, f.data(), 4, MPI_INT, MPI_MAX, comm_.get()), "MPI_Allreduce(control)",
                    comm_.get());
  return Control{f[0] != 0, f[1], f[2] != 0, f[3] != 0};
}

void RunControl::exit_orphaned(long step) const {
  std::fprintf(stderr,
               "sama: rank %d: the launcher (parent process %d) is gone: stopping at step %ld without "
               "writing anything\n",
               comm_.rank(), app::launcher_pid(), step);
  std::fflush(nullptr);
  std::_Exit(1);
}

std::string RunControl::stop_message(long done, int reason) const {
  const bool interrupt = reason == SIGINT;
  return fmt::format(
      "sama: stopped at step {} on request ({}{}); checkpoint committed{}; exit code {}{}", done,
      stop_reason_text(reason),
      app::stop_signal() == 0 && reason < kStopDebug ? fmt::format(" by another rank") : std::string(),
      app::stop_signal() != 0 ? fmt::format(" {:.2f} s after the request", app::seconds_since_stop_signal())
                              : std::string(),
      interrupt ? app::kExitInterrupted : app::kExitRequeue,
      interrupt ? " (interrupted; continue with --resume auto)" : " asks for a requeue");
}

}  // namespace sama::training

#pragma once
// Run control: what every rank must agree on each step (a non-finite step, a stop on request or at the
// wall-time budget, a timed checkpoint, a dead launcher) in one small all-reduce, and the faults the
// deck's debug.* keys inject. Host-only (no Kokkos).
#include "sama/app/deck.hpp"
#include "sama/comm/communicator.hpp"
#include "sama/core/timer.hpp"

#include <string>

namespace sama::training {

// Stop reasons besides a signal number (1..64).
inline constexpr int kStopDebug = 200;   // debug.preempt_step
inline constexpr int kStopBudget = 201;  // checkpoint.wall_time_minutes

/// "SIGUSR1 received", "debug.preempt_step", ...
std::string stop_reason_text(int reason);

/// What the ranks agreed on for a step (each the maximum over ranks).
struct Control {
  bool nonfinite = false;  // some rank saw a non-finite loss or gradient
  int stop_reason = 0;     // 0: none; a signal number; kStopDebug; kStopBudget
  bool time_due = false;   // a timed checkpoint is due (rank 0's clock)
  bool orphaned = false;   // some rank's launcher is gone
};

class RunControl {
 public:
  /// Starts the wall clock (the budget's and the timed checkpoints').
  RunControl(const app::Deck& deck, const comm::Communicator& comm) : deck_(deck), comm_(comm) {}

  /// debug.fail_step/debug.fail_rank: throws on that rank at that step.
  void inject_failure(long step) const;
  /// debug.nan_*: the loss sum, or NaN on debug.nan_rank for debug.nan_count steps from debug.nan_step.
  double inject_nan(long step, double loss_sum) const;
  /// The step's one small all-reduce (maximum over ranks): whether any rank saw a non-finite step,
  /// the stop reason (a signal, debug.preempt_step, the wall-time budget on rank 0's clock), whether a
  /// timed checkpoint is due and whether a launcher died.
  Control agree(long step, bool nonfinite);
  /// A rank's launcher died (e.g. mpirun killed by kill -9): every rank stops at once, writing nothing
  /// (a resume or a new run may already own the directory).
  [[noreturn]] void exit_orphaned(long step) const;
  /// The line said when the run stops on request at step `done` with a committed checkpoint.
  std::string stop_message(long done, int reason) const;

  void checkpoint_written() { since_checkpoint_.reset(); }
  double elapsed_seconds() const { return wall_.seconds(); }

 private:
  const app::Deck& deck_;
  const comm::Communicator& comm_;
  Timer wall_, since_checkpoint_;
};

}  // namespace sama::training

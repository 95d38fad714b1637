#pragma once
// Stop requests from the batch system: SIGUSR1 (Slurm: #SBATCH --signal=B:USR1@<lead>; mpirun
// forwards it to every rank) and SIGTERM only set a flag; the training loop agrees on a stop step
// across ranks, commits a checkpoint and exits with kExitRequeue.
namespace sama::app {

/// Exit status of a run that stopped early with a committed checkpoint and asks to be requeued
/// (EX_TEMPFAIL). The requeueing Slurm script resubmits on this code only.
inline constexpr int kExitRequeue = 75;

/// Installs the SIGUSR1/SIGTERM handlers (idempotent).
void install_stop_handlers();
/// The signal that asked this process to stop, 0 if none.
int stop_signal();
/// Seconds since the stop signal arrived (monotonic clock), 0 if none.
double seconds_since_stop_signal();
/// Record a stop request as if `signal` had arrived (tests and debug.preempt_step).
void request_stop(int signal);

}  // namespace sama::app

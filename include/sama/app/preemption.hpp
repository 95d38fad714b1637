#pragma once
// Stop requests from the batch system: SIGUSR1 (Slurm: #SBATCH --signal=B:USR1@<lead>; mpirun
// forwards it to every rank), SIGTERM and SIGINT only set a flag; the training loop agrees on a stop
// step across ranks, commits a checkpoint and exits with kExitRequeue (SIGINT: kExitInterrupted).
// A second SIGTERM/SIGINT ends the process at once (exit 128 + signal), without writing.
namespace sama::app {

/// Exit status of a run that stopped early with a committed checkpoint and asks to be requeued
/// (EX_TEMPFAIL). The requeueing Slurm script resubmits on this code only.
inline constexpr int kExitRequeue = 75;

/// Exit status after SIGINT (Ctrl-C): the stop checkpoint is committed as for SIGTERM, but the status
/// is the shell's convention for an interrupt (128 + 2), so that a requeue script does not resubmit.
inline constexpr int kExitInterrupted = 130;

/// Notes whether a launcher started this process, and its parent; call first in main, before MPI_Init.
void note_launcher();
/// Installs the SIGUSR1/SIGTERM/SIGINT handlers (idempotent).
void install_stop_handlers();
/// The signal that asked this process to stop, 0 if none.
int stop_signal();
/// Seconds since the stop signal arrived (monotonic clock), 0 if none.
double seconds_since_stop_signal();
/// Record a stop request as if `signal` had arrived (tests and debug.preempt_step).
void request_stop(int signal);
/// True when this rank was started by a launcher (mpirun/orted, PMIx) that has since died: the parent
/// process changed (the rank was re-parented). Such an orphan must stop without writing anything.
bool launcher_gone();
/// The parent process id noted at start.
int launcher_pid();

}  // namespace sama::app

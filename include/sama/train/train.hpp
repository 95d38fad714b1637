#pragma once
// The training driver's public entry: run a deck (sama::app::train) with RunOptions, get a RunResult.
// Its parts live in this folder (namespace sama::training): the data (data.hpp), the model adapter
// (model_adapter.hpp), the train state that saves and loads itself by name (state.hpp), run control
// (run_control.hpp) and the trainer (trainer.hpp: base step, meta step, scores, reporting, the loop).
#include "sama/app/deck.hpp"
#include "sama/comm/communicator.hpp"
#include "sama/core/gemm.hpp"
#include "sama/core/kokkos_counters.hpp"

#include <iosfwd>
#include <string>
#include <vector>

namespace sama::app {

struct RunOptions {
  std::string out_dir;          // run directory ("" = write no files: benchmarks and tests)
  std::ostream* log = nullptr;  // progress lines (rank 0); nullptr = silent
  bool final_weights = true;    // write weights.h5 at the end
  long untimed_steps = 0;       // leave the first N steps out of the throughput and GEMM counts
  bool record_gemm_calls = false;
  bool keep_parameters = false; // return the final θ and λ in RunResult (tests)
  bool resume = false;          // continue from the newest good checkpoint in out_dir/checkpoints
  bool resume_if_present = false; // ... only if there is one (--resume auto); otherwise start afresh
  bool overwrite = false;         // a fresh run may replace a completed or interrupted run in out_dir
  int ranks_per_node = 0;         // for the memory check (0: ask MPI)
  bool count_kokkos = false;      // install the Kokkos counters; per-step counts in RunResult::kokkos_steps
};

struct RunResult {
  double final_test_accuracy = 0;
  double best_test_accuracy = 0;
  double final_test_loss = 0;
  double final_train_loss = 0;   // mean unweighted base loss over the last logging window
  double first_train_loss = 0;   // the same over the first window
  long steps = 0;
  int ranks = 1;
  std::string method;
  double samples_per_second = 0;  // base samples (global batch) per second of training
  double train_seconds = 0;
  double peak_rss_mb = 0;
  double memory_estimate_mb = 0;  // the estimate printed before allocating
  double gemm_flops = 0;          // GEMM FLOPs counted during the timed training steps
  double gemm_seconds = 0;        // wall-clock seconds inside host BLAS GEMMs during those steps
  std::vector<GemmRecorder::Call> gemm_calls;  // with RunOptions::record_gemm_calls
  long meta_steps = 0;
  double mean_weight_clean = 0;   // mean meta weight of clean / noisy samples at the end
  double mean_weight_noisy = 0;
  long meta_weight_collapsed_at_step = -1;  // the first logging window the collapse detector fired (-1: never)
  double comm_hidden_fraction = 0;  // share of gradient communication hidden behind backward (P > 1)
  double comm_exposed_seconds = 0;  // time spent waiting for gradient all-reduces
  std::vector<float> theta, lambda;  // with RunOptions::keep_parameters
  bool preempted = false;            // stopped early on request with a committed checkpoint
  int stop_reason = 0;               // why: the signal number, or 200 (debug.preempt_step), 201 (wall-time budget)
  double stop_to_checkpoint_seconds = 0;  // from the stop signal to the committed checkpoint
  long nonfinite_steps = 0;          // steps skipped for a non-finite loss, gradient or hypergradient
  long resumed_from = -1;            // the checkpoint step this run continued from (-1: none)
  // Hypergradient diagnostic (meta.diagnose_every > 0): run means over the diagnosed meta steps of the
  // cosine and of ‖method‖/‖reference‖ between the method's λ-gradient and the reference's.
  long hypergrad_diagnoses = 0;
  double mean_hypergrad_cosine = 0;
  double mean_hypergrad_norm_ratio = 0;
  // With RunOptions::count_kokkos: what Kokkos did in each step of this run (from its first step;
  // the step itself: gather, base and meta step, replica check), and in the logging, evaluation and
  // checkpoints between steps, summed.
  std::vector<KokkosCounts> kokkos_steps;
  KokkosCounts kokkos_between_steps;
};

/// Mean Kokkos counts per step over the steps from `first` on of a run with RunOptions::count_kokkos.
struct StepCounts {
  long steps = 0;  // steps averaged over
  double host_allocations = 0, device_allocations = 0;
  double copies_host_to_device = 0, copies_device_to_host = 0, copies_same_space = 0, copies_aliased = 0, fills = 0;
  double kernels = 0, regions = 0;
  long max_allocations = 0;  // the most View allocations (host + device) in one of these steps
};
StepCounts per_step_counts(const RunResult& r, long first);

/// Runs the deck to the end; throws sama::Error on any failure (no summary.json is then written).
RunResult train(const Deck& deck, const RunOptions& options, const comm::Communicator& comm);

}  // namespace sama::app

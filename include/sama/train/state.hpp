#pragma once
// The train state: everything a checkpoint holds of a run besides the per-sample scores and the unroll
// history (which save themselves): θ and λ, both optimizers, the samplers, the counters, the logging
// window's sums, the weight net's health, the hypergradient diagnostic's sums and the results so far.
//
// It saves and loads itself by name: one dataset per quantity ("counters.meta_steps",
// "results.best_test_accuracy", "window.base_loss" with one value per rank, ...). Checkpoints of format
// 1 held some of these as positional arrays ("counters", "results", "rank_windows", ...); load() takes
// those too, translated by legacy_layout().
#include "sama/comm/communicator.hpp"
#include "sama/core/error.hpp"
#include "sama/core/types.hpp"
#include "sama/data/sampler.hpp"
#include "sama/io/checkpoint.hpp"
#include "sama/optim/optimizer.hpp"
#include "sama/train/train.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sama::training {

using real = float;

/// Sums of the current logging window. The first seven differ per rank (each rank's shard of every
/// batch); steps and meta_steps are the same everywhere.
struct LogWindow {
  double base_loss = 0, meta_loss = 0, eps = 0;
  long steps = 0, meta_steps = 0;
  double w_clean_sum = 0, w_noisy_sum = 0;
  long w_clean_n = 0, w_noisy_n = 0;
};

/// The weight net's health over the window (collapse detector, docs/reweighting.md): per rank, Σw, Σw²,
/// Σℓ, Σℓ², n, and the pre-activations' min, max, Σz, Σz², saturated count; and over meta steps
/// (identical on every rank) Σ‖∇λ‖ and their count.
struct WeightNetHealth {
  static constexpr std::size_t kFields = 10;
  static constexpr std::size_t kMin = 5, kMax = 6;  // fields taken as the minimum / maximum over ranks
  static std::array<double, kFields> empty_window() {
    const double inf = std::numeric_limits<double>::infinity();
    return {0, 0, 0, 0, 0, inf, -inf, 0, 0, 0};
  }
  std::array<double, kFields> window = empty_window();
  double lambda_grad_norm_sum = 0;
  long lambda_grad_norms = 0;
  long collapsed_at_step = -1;  // first logging window judged collapsed (-1: none)
  bool weights_spread = false;  // some window's weights had spread ≥ meta.collapse_spread (detector armed)
};

/// Hypergradient diagnostic sums (identical on every rank): cosine and norm ratio in this window and in
/// the run.
struct HypergradDiagnostics {
  double window_cosine = 0, window_ratio = 0, run_cosine = 0, run_ratio = 0;
  long window_diagnoses = 0, run_diagnoses = 0;
};

/// Steps counted over the run.
struct Counters {
  long meta_steps = 0;
  long nonfinite_total = 0, nonfinite_run = 0;  // non-finite steps skipped (base and meta), in total and in a row
  bool first_window = true;                     // no logging window has ended yet
};

struct TrainState {
  TrainState(Vec<real> theta, Vec<real> lambda, std::unique_ptr<optim::Optimizer<real>> base_opt,
             std::unique_ptr<optim::Optimizer<real>> meta_opt, data::EpochSampler sampler,
             data::EpochSampler meta_sampler);

  // Base level: θ and its optimizer; meta level: λ and its optimizer.
  Vec<real> theta, lambda;
  /// The model's non-trained buffers (batch norm's running statistics; a view of the network's own,
  /// empty for a model without any): replicated like θ, saved as "model_buffers".
  VecU<real> model_buffers;
  std::unique_ptr<optim::Optimizer<real>> base_opt, meta_opt;
  data::EpochSampler sampler, meta_sampler;
  Counters counters;
  LogWindow window;
  WeightNetHealth health;
  HypergradDiagnostics diagnostics;
  app::RunResult result;  // the results so far (of those saved: test accuracy and loss, train loss, weights)
  double train_seconds = 0;
  long start_step = 0;  // 0, or the step a checkpoint resumes from

  /// Adds every quantity to `c` by name (collective: gathers the per-rank window sums to rank 0).
  void save(io::CheckpointData& c, const comm::Communicator& comm) const;
  /// Takes the state back from `c` (same or another rank count; format 1 or later).
  void load(const io::CheckpointData& c, const comm::Communicator& comm);
};

/// Threads per rank, BLAS threads, Kokkos concurrency: what decides the order of threaded sums.
struct ThreadLayout {
  std::int64_t threads_per_rank = 0, blas_threads = 0, kokkos_concurrency = 0;
};
ThreadLayout thread_layout();
void save_thread_layout(io::CheckpointData& c, const ThreadLayout& t);
/// The layout a checkpoint was written with; nullopt for checkpoints that predate it.
std::optional<ThreadLayout> saved_thread_layout(const io::CheckpointData& c);

/// A format-1 checkpoint's positional arrays translated into the named layout (format 2); other
/// arrays are kept as they are. A checkpoint of format 2 or later is returned unchanged.
io::CheckpointData legacy_layout(const io::CheckpointData& c);

/// Copies of device vectors to and from a checkpoint's float arrays (sizes checked, naming `what`).
template <class V>
std::vector<float> to_floats(const V& v) {
  auto h = Kokkos::create_mirror_view_and_copy(HostSpace(), v);
  return std::vector<float>(host_data(h), host_data(h) + h.extent(0));
}
template <class V>
void from_floats(const std::vector<float>& x, const V& v, const std::string& what, const std::string& source) {
  if (x.size() != v.extent(0))
    fail("checkpoint '{}': '{}' has {} values, this run needs {} (a different model?)", source, what, x.size(),
         v.extent(0));
  auto h = Kokkos::create_mirror_view(v);
  std::copy(x.begin(), x.end(), host_data(h));
  Kokkos::deep_copy(v, h);
}

}  // namespace sama::training

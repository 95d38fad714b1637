#pragma once
// The trainer: the model, the Meta-Weight-Net, the train state and the buffers of one run, and its
// parts, each in its own file under src/train/:
//
//   loop.cpp        the constructor and run(): the training loop, step by step
//   base_step.cpp   forward, the weights, backward with the overlapped all-reduce, the update
//   meta_step.cpp   the meta gradient and the hypergradient by method, the diagnostic, the unroll history
//   checkpoint.cpp  snapshot/restore of the state, checkpoint writing, the replica check
//   scores.cpp      per-sample scores (scores.h5) and the sample table (weights.h5)
//   reporting.cpp   the header, progress lines, metrics.csv, the weight net's health, evaluation, results
#include "sama/app/deck.hpp"
#include "sama/app/sample_scores.hpp"
#include "sama/comm/communicator.hpp"
#include "sama/comm/gradient_reducer.hpp"
#include "sama/core/gemm.hpp"
#include "sama/io/checkpoint.hpp"
#include "sama/io/run_files.hpp"
#include "sama/meta/hypergradient.hpp"
#include "sama/meta/hypergradient_methods.hpp"
#include "sama/meta/meta_weight_net.hpp"
#include "sama/optim/schedule.hpp"
#include "sama/train/batch.hpp"
#include "sama/train/data.hpp"
#include "sama/train/model_adapter.hpp"
#include "sama/train/state.hpp"
#include "sama/train/train.hpp"

#include <fmt/format.h>

#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace sama::training {

class Trainer {
 public:
  Trainer(const app::Deck& deck, const app::RunOptions& opt, const comm::Communicator& comm, Data data);

  /// Trains from the state's step to the end, or to a stop on request (loop.cpp).
  app::RunResult run();
  long total_steps() const { return total_steps_; }

  /// The complete state after `step` steps, for a checkpoint (collective: gathers per-rank sums).
  io::CheckpointData snapshot(long step);
  /// Continue from a checkpoint (same or another rank count; any format this sama reads).
  void restore(const io::CheckpointData& c);

 private:
  std::uint64_t seed() const { return static_cast<std::uint64_t>(deck_.train.seed); }

  // ---- base step (base_step.cpp)
  /// Gradient of Σ_i coef_i ℓ_i over the global batch into grad_ (summed over ranks, overlapped).
  void backward_allreduce(VecU<const real> coef, VecU<const int> y);
  /// Forward, weights and the summed gradient; returns this rank's loss sum (non-finite flags trouble).
  double base_gradient();
  void base_update(double lr, double loss_sum);
  // The model's batch statistics (batch norm; nothing to do for a model without buffers).
  /// Sets up the sum over ranks of sync batch norm and the buffers' backup (constructor).
  void init_batch_statistics();
  /// Batch statistics of the following passes over the global batch (sync batch norm) or this rank's.
  void use_global_batch_statistics(bool global) { model_.net().set_batch_sum(global ? &batch_sum_ : nullptr); }
  /// A skipped step: the running statistics go back to their values before its forward.
  void reject_model_buffers();
  /// An accepted step: without sync batch norm, the running statistics are averaged over ranks (so that
  /// they stay replicated, like θ).
  void settle_model_buffers();
  void accumulate_weight_stats();

  // ---- meta step (meta_step.cpp; hypergradient_methods.hpp has the math)
  bool meta_due(long step) const;
  /// The meta batch gathered and the meta step taken (λ updated unless its gradient is non-finite).
  void meta_step();
  /// v = ∂L_meta/∂θ on the meta batch into grad_ (local, or summed over ranks); returns the loss sum.
  double meta_gradient();
  /// sama / finite_difference: δ by the ± probe along D ⊙ v (or v; v is overwritten); returns ε.
  double probe_hypergradient(VecU<real> v);
  /// Any other method (also the diagnostic's reference): the λ-gradient from v into out.
  void hypergradient(meta::Method method, long k, VecU<const real> v, VecU<real> out);
  /// The Hessian of the weighted base loss at θ on the base batch, bound for products.
  void bind_base_hessian();
  void unrolled_hypergradient(VecU<const real> v, long k, VecU<real> out);
  /// θ-sized sum over ranks through the gradient reducer ("global" strategy).
  void allreduce_theta(VecU<real> x);
  bool diagnosis_due() const;
  /// The reference λ-gradient on the same batches (not applied): cosine and norm ratio to the method's.
  void diagnose_hypergradient(VecU<const real> v);
  void init_hypergradients();
  void save_history(io::CheckpointData& c);
  void restore_history(const io::CheckpointData& c);

  // ---- checkpoints and the replica check (checkpoint.cpp)
  void write_checkpoint(long step, const char* why);
  void check_replicas(long step);

  // ---- per-sample scores (scores.cpp): set up, add the accepted base batch, write
  void init_scores();
  void record_scores();
  void write_scores(const std::string& path);
  void write_sample_table(const std::string& path);

  // ---- reporting (reporting.cpp)
  /// metrics.csv opened (a resumed run's kept up to its checkpoint) when rank 0 writes files.
  io::MetricsWriter open_metrics() const;
  /// The run's header lines.
  void say_header();
  void log_and_evaluate(long done, double lr, bool log_now, bool eval_now, long timed_steps, double window_s,
                        double elapsed_s, io::MetricsWriter& metrics);
  /// At a logging window's end (collective): the weight net's window statistics into `row`, the
  /// collapse detector, and a warning for the progress line the first time it fires.
  std::string weight_net_health(long done, std::map<std::string, double>& row);
  void evaluate(double& accuracy, double& loss);
  std::string weight_description() const;
  /// The results at the end of the run, and its final files (weights.h5, scores.h5).
  app::RunResult finish(const GemmRecorder& gemm_count);
  template <class... Args>
  void say(fmt::format_string<Args...> f, Args&&... args) {
    if (opt_.log && comm_.rank() == 0) {
      *opt_.log << fmt::format(f, std::forward<Args>(args)...) << std::endl;
    }
  }

  // The run.
  const app::Deck& deck_;
  const app::RunOptions& opt_;
  const comm::Communicator& comm_;
  Data data_;
  meta::Method method_;
  std::size_t batch_size_, meta_batch_size_, eval_batch_, workspace_;  // global batches
  std::size_t local_batch_ = 0;                                           // this rank's share
  long total_steps_ = 0, eval_interval_ = 0;
  optim::ScheduleConfig schedule_;
  meta::SumFn sum_;  // in-place sum over ranks (host doubles)
  std::unique_ptr<comm::GradientReducer> reducer_;

  // The model and the Meta-Weight-Net, and the state (θ, λ, optimizers, samplers, counters, ...).
  Model model_;
  // Batch statistics: the sum over ranks (sync batch norm) through a host buffer allocated once; the
  // buffers' copy from before the base step's forward (a skipped step restores it).
  bool sync_bn_base_ = false, sync_bn_meta_ = false;
  nn::BatchSum<real> batch_sum_;
  HostVec<real> batch_sum_host_, buffers_host_;
  Vec<real> buffers_backup_;
  Batch::HostTransform augment_;  // data.augment on training batches (null: none)
  meta::MetaWeightNet<real> mwn_;
  TrainState state_;
  Vec<real> grad_, lambda_grad_;  // θ's and λ's gradients
  meta::ProbeWorkspace<real> probe_;

  // The other hypergradient methods and the diagnostic (allocated by init_hypergradients() for the
  // method and reference in use): v and the direction w, the Hessian's coefficients and products, the
  // solvers' vectors, the optimizer's adjoint and the unroll history with its batch buffer.
  meta::Method reference_ = meta::Method::none;
  Vec<real> v_, direction_, hessian_coef_, reference_grad_;
  std::unique_ptr<meta::HessianProduct<real>> hessian_;
  std::unique_ptr<meta::SolverWorkspace<real>> solver_;
  std::unique_ptr<meta::OptimizerAdjoint<real>> adjoint_;
  std::unique_ptr<meta::UnrollHistory<real>> history_;
  std::unique_ptr<meta::UnrollWorkspace<real>> unroll_ws_;
  std::unique_ptr<Batch> unroll_batch_;

  // The batches and per-sample buffers.
  Batch base_, meta_;
  const std::vector<std::int64_t>* base_ids_ = nullptr;  // ids of the current base batch
  long epoch_ = 0;                                       // epoch of the current step
  Vec<real> losses_, weights_, coef_, delta_;
  Vec<real>::HostMirror weights_host_, losses_host_;

  // Per-sample scores: the base batch's EL2N, correctness and squared gradient norms, added to the
  // run's totals once the step is accepted.
  std::unique_ptr<app::SampleScores> scores_;
  Vec<real> el2n_, grad_sq_, envelope_;
  Vec<int> correct_;
  Vec<real>::HostMirror el2n_host_, grad_sq_host_, coef_host_, raw_weight_host_, envelope_host_;  // allocated once
  Vec<int>::HostMirror correct_host_;
};

}  // namespace sama::training

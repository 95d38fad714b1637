// The training loop. It reads like the algorithm (DESIGN.md §2): every step a base step on a training
// batch weighted by the Meta-Weight-Net; every `meta.interval` steps a SAMA meta step:
//
//   v  = ∂L_meta/∂θ                     (meta batch, clean labels)
//   w  = D ⊙ v                          (the base optimizer's adaptation; D = I for finite_difference)
//   δ_i = (ℓ_i(θ+εw) − ℓ_i(θ−εw)) / 2ε  (same base batch, ε = α/‖w‖, θ restored bitwise)
//   ∇λ = ∂L_meta/∂λ − ∂/∂λ (1/B) Σ δ_i w_i(λ)      (for Meta-Weight-Net, ∂L_meta/∂λ = 0)
//   λ ← meta optimizer step (Adam)
//
// The other meta methods replace w (sama_jvp: D ⊙ v; neumann, cg: ≈ H⁻¹v) and take δ_i exactly by
// forward mode, or reverse the last K base steps (unrolled): docs/hypergradients.md.
#include "sama/app/trainer.hpp"

#include "sama/app/commands.hpp"
#include "sama/app/preemption.hpp"
#include "sama/app/sample_scores.hpp"
#include "sama/comm/gradient_reducer.hpp"
#include "sama/io/checkpoint.hpp"
#include "sama/io/keep_mask.hpp"
#include "sama/core/blas_core.hpp"
#include "sama/core/error.hpp"
#include "sama/core/gemm.hpp"
#include "sama/core/kokkos_counters.hpp"
#include "sama/core/threads.hpp"
#include "sama/core/timer.hpp"
#include "sama/core/vector_ops.hpp"
#include "sama/data/dataset.hpp"
#include "sama/data/noise.hpp"
#include "sama/data/sampler.hpp"
#include "sama/io/run_files.hpp"
#include "sama/io/scores_file.hpp"

#include <array>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include "sama/meta/hypergradient.hpp"
#include "sama/meta/hypergradient_methods.hpp"
#include "sama/io/safe_file.hpp"
#include "sama/meta/meta_weight_net.hpp"
#include "sama/nn/classifier.hpp"
#include "sama/optim/optimizer.hpp"
#include "sama/optim/schedule.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <ostream>

namespace sama::app {
namespace {

// Stop reasons in the control all-reduce besides a signal number (1..64).
constexpr int kStopDebug = 200;   // debug.preempt_step
constexpr int kStopBudget = 201;  // checkpoint.wall_time_minutes

std::string stop_reason_text(int reason) {
  if (reason == kStopDebug) return "debug.preempt_step";
  if (reason == kStopBudget) return "wall-time budget (checkpoint.wall_time_minutes)";
  const char* name = reason == SIGUSR1 ? "SIGUSR1" : reason == SIGTERM ? "SIGTERM" : reason == SIGINT ? "SIGINT" : nullptr;
  return name ? fmt::format("{} received", name) : fmt::format("signal {} received", reason);
}

using real = float;
// The collapse detector judges the weights' spread only while the losses they are computed from
// differ by more than this (standard deviation over the window): equal losses rightly get equal weights.
constexpr double kCollapseLossSpread = 0.1;
using HostInts = Kokkos::View<int*, HostSpace>;

/// A batch of samples on the device, gathered (and normalised) from a host data set.
struct Batch {
  Batch(std::size_t capacity, std::size_t features)
      : x(make_mat<real>("sama::Batch::x", capacity, features)),
        y("sama::Batch::y", capacity),
        x_host(Kokkos::create_mirror_view(x)),
        y_host(Kokkos::create_mirror_view(y)) {}
  void load(const data::Dataset& d, const data::Normalization& norm, const std::vector<std::int32_t>& labels,
            const std::int64_t* ids, std::size_t count) {
    size = count;
    data::gather(d, norm, ids, count, host_data(x_host));
    for (std::size_t i = 0; i < count; ++i) y_host(i) = labels[static_cast<std::size_t>(ids[i])];
    Kokkos::deep_copy(x, x_host);
    Kokkos::deep_copy(y, y_host);
  }
  MatU<const real> xs() const { return MatU<const real>(x.data(), size, x.extent(1)); }
  VecU<const int> ys() const { return VecU<const int>(y.data(), size); }
  Mat<real> x;
  Vec<int> y;
  Mat<real>::HostMirror x_host;
  Vec<int>::HostMirror y_host;
  std::size_t size = 0;
};

std::vector<std::size_t> widths_of(const Deck& deck, std::size_t in, std::size_t out) {
  std::vector<std::size_t> w{in};
  for (long h : deck.model.hidden) w.push_back(static_cast<std::size_t>(h));
  w.push_back(out);
  return w;
}

/// The deck's base optimizer with one parameter group per layer that has parameters (a Linear's
/// weights and bias together): LAMB's trust ratio is per group; the other optimizers ignore groups.
optim::OptimizerConfig base_optimizer_config(const Deck& deck, const nn::Classifier<real>& model) {
  optim::OptimizerConfig c = deck.optimizer.cfg;
  c.groups.clear();
  c.groups = model.net().param_groups();
  return c;
}

struct Data {
  data::Dataset train, test;
  data::MetaSplit split;
  std::vector<std::int64_t> kept;  // the training ids sampled from: split.train_ids, or those a keep mask keeps
  data::NoisyLabels labels;
  data::Normalization norm;
};

/// The data's seed (meta split, label noise, synthetic samples): data.seed, or train.seed when 0.
long data_seed(const Deck& deck) { return deck.data.seed > 0 ? deck.data.seed : deck.train.seed; }

Data load_data(const Deck& deck) {
  Data d;
  const auto& c = deck.data;
  const auto seed = static_cast<std::uint64_t>(data_seed(deck));
  if (c.source == "fashion_mnist") {
    d.train = data::read_fashion_mnist(c.path, true);
    d.test = data::read_fashion_mnist(c.path, false);
  } else if (c.source == "hdf5") {
    // A corrupt file can crash libhdf5 itself: read each once in a child process first.
    data::probe_hdf5_in_child(c.train_file);
    d.train = data::read_hdf5(c.train_file);
    data::probe_hdf5_in_child(c.test_file);
    d.test = data::read_hdf5(c.test_file);
  } else {
    const auto f = static_cast<std::size_t>(c.synthetic_features);
    const int k = static_cast<int>(c.synthetic_classes);
    d.train = data::make_synthetic(static_cast<std::size_t>(c.synthetic_train), f, k, c.synthetic_separation, seed, 0);
    d.test = data::make_synthetic(static_cast<std::size_t>(c.synthetic_test), f, k, c.synthetic_separation, seed, 1);
  }
  if (d.test.features() != d.train.features())
    fail("test data '{}' has {} features per sample, training data '{}' has {}", d.test.source, d.test.features(),
         d.train.source, d.train.features());
  // Classes are 0..C-1 with C = 1 + the largest training label; every class must have training
  // samples, and the test labels must be among them.
  const int classes = d.train.num_classes;
  std::vector<std::size_t> per_class(static_cast<std::size_t>(classes), 0);
  for (auto l : d.train.labels) ++per_class[static_cast<std::size_t>(l)];
  for (int k = 0; k < classes; ++k)
    if (per_class[static_cast<std::size_t>(k)] == 0)
      fail("training data '{}': class {} has no samples, but labels go up to {} (labels must be 0..C-1 with "
           "every class present)",
           d.train.source, k, classes - 1);
  for (std::size_t i = 0; i < d.test.labels.size(); ++i)
    if (d.test.labels[i] >= classes)
      fail("test data '{}': sample {} has label {}, not a class of the training data (0..{})", d.test.source, i,
           d.test.labels[i], classes - 1);
  d.test.num_classes = classes;
  try {
    d.split = data::split_meta(d.train.labels, classes, static_cast<std::size_t>(c.meta_size), seed);
  } catch (const Error& e) {
    fail("{}: data.meta_size = {} does not fit training data '{}': {}", deck.file, c.meta_size, d.train.source,
         e.what());
  }
  d.labels = data::apply_label_noise(d.train.labels, classes, d.split.train_ids, data::parse_noise_type(c.noise_type),
                                     c.noise_rate, seed);
  d.norm = data::compute_normalization(d.train, d.split.train_ids);
  // A keep mask (sama prune) must have been made for exactly this split and these observed labels.
  if (c.keep_mask.empty()) {
    d.kept = d.split.train_ids;
  } else {
    data::probe_hdf5_in_child(c.keep_mask, [](const std::string& p) { io::read_keep_mask(p); });  // a user file too
    d.kept = io::kept_ids(io::read_keep_mask(c.keep_mask), d.split.train_ids, d.labels.observed);
  }
  return d;
}

class Trainer {
 public:
  Trainer(const Deck& deck, const RunOptions& opt, const comm::Communicator& comm, Data data)
      : deck_(deck),
        opt_(opt),
        comm_(comm),
        data_(std::move(data)),
        method_(meta::parse_method(deck.meta.method)),
        batch_size_(static_cast<std::size_t>(deck.train.batch_size)),
        meta_batch_size_(static_cast<std::size_t>(deck.meta.batch_size)),
        eval_batch_(static_cast<std::size_t>(deck.train.eval_batch)),
        workspace_(std::max({batch_size_, meta_batch_size_, eval_batch_})),
        sampler_(data_.kept, batch_size_, seed(), static_cast<std::uint64_t>(Stream::sampler), comm.rank(),
                 comm.size()),
        meta_sampler_(data_.split.meta_ids, meta_batch_size_, seed(), static_cast<std::uint64_t>(Stream::meta_sampler),
                      comm.rank(), comm.size()),
        model_(widths_of(deck, data_.train.features(), static_cast<std::size_t>(data_.train.num_classes)),
               nn::parse_activation(deck.model.activation), workspace_),
        theta_(make_vec<real>("sama::theta", model_.num_params())),
        grad_(make_vec<real>("sama::grad", model_.num_params())),
        base_opt_(optim::make_optimizer<real>(base_optimizer_config(deck, model_), model_.num_params())),
        mwn_(meta::parse_weight_net(deck.meta.weight_net), static_cast<std::size_t>(deck.meta.hidden),
             deck.meta.normalize, workspace_),
        lambda_(make_vec<real>("sama::lambda", mwn_.num_params())),
        lambda_grad_(make_vec<real>("sama::lambda_grad", mwn_.num_params())),
        meta_opt_(optim::make_optimizer<real>(meta_optimizer_config(deck), mwn_.num_params())),
        probe_(model_.num_params(), workspace_),
        base_(workspace_, data_.train.features()),
        meta_(workspace_, data_.train.features()),
        losses_(make_vec<real>("sama::losses", workspace_)),
        weights_(make_vec<real>("sama::weights", workspace_)),
        coef_(make_vec<real>("sama::coef", workspace_)),
        delta_(make_vec<real>("sama::delta", workspace_)) {
    local_batch_ = sampler_.local_batch();
    sum_ = [this](double* x, int n) { comm_.allreduce_sum(x, n); };
    // Buckets of the flat gradient in the order backward completes the layers (last layer first).
    const std::vector<std::pair<std::size_t, std::size_t>> layers = model_.net().ready_groups();
    reducer_ = deck.parallel.backend == "nccl"
                   ? comm::make_nccl_reducer(comm_, grad_.data(), grad_.extent(0), layers, deck.parallel.bucket_mb * 1e6)
                   : comm::make_mpi_reducer(comm_, grad_.data(), grad_.extent(0), layers, deck.parallel.bucket_mb * 1e6,
                                            comm::default_mpi_buffer(deck.parallel.gpu_aware_mpi));
    total_steps_ = deck.train.steps > 0 ? deck.train.steps
                                        : deck.train.epochs * static_cast<long>(sampler_.batches_per_epoch());
    schedule_ = deck.schedule;
    schedule_.total_steps = total_steps_;
    eval_interval_ = deck.train.eval_interval > 0 ? deck.train.eval_interval
                                                  : static_cast<long>(sampler_.batches_per_epoch());
    Rng init_rng(seed(), Stream::init);
    model_.init(theta_, init_rng);
    Rng meta_rng(seed(), Stream::meta_init);
    mwn_.init(lambda_, meta_rng);
    weights_host_ = Kokkos::create_mirror_view(weights_);
    losses_host_ = Kokkos::create_mirror_view(losses_);
    if (deck.scores.enabled) init_scores();
    init_hypergradients();
  }

  RunResult run();
  long total_steps() const { return total_steps_; }

 private:
  std::uint64_t seed() const { return static_cast<std::uint64_t>(deck_.train.seed); }
  static optim::OptimizerConfig meta_optimizer_config(const Deck& d) {
    optim::OptimizerConfig c;
    c.name = "adam";
    c.weight_decay = d.meta.weight_decay;
    c.beta1 = d.meta.beta1;
    c.beta2 = d.meta.beta2;
    c.eps = d.meta.eps;
    return c;
  }
  bool meta_due(long step) const {
    return method_ != meta::Method::none && step >= deck_.meta.warmup && base_opt_->steps() > 0 &&
           (step - deck_.meta.warmup) % deck_.meta.interval == 0;
  }

  /// Gradient of Σ_i coef_i ℓ_i over the global batch into grad_ (summed over ranks, overlapped).
  void backward_allreduce(VecU<const real> coef, VecU<const int> y);
  void check_replicas(long step);
  /// Forward, weights and the summed gradient; returns this rank's loss sum (non-finite flags trouble).
  double base_gradient();
  void base_update(double lr, double loss_sum);
  /// One small all-reduce per step (maximum over ranks): [any rank non-finite, stop reason (0: none;
  /// a signal number; kStopDebug; kStopBudget), time checkpoint due, launcher gone].
  std::array<int, 4> agree(bool nonfinite, int stop_reason, bool time_due, bool orphaned);
  void write_checkpoint(long step, const char* why);
  void log_and_evaluate(long done, double lr, bool log_now, bool eval_now, double window_s, double elapsed_s,
                        io::MetricsWriter& metrics);
  void meta_step();
  // The meta step's parts (meta_step() dispatches by method; hypergradient_methods.hpp has the math).
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
  bool diagnosis_due() const {
    return reference_ != meta::Method::none && meta_steps_ % deck_.meta.diagnose_every == 0;
  }
  /// The reference λ-gradient on the same batches (not applied): cosine and norm ratio to the method's.
  void diagnose_hypergradient(VecU<const real> v);
  void init_hypergradients();
  void save_history(io::CheckpointData& c);
  void restore_history(const io::CheckpointData& c);
  void evaluate(double& accuracy, double& loss);
  void accumulate_weight_stats();
  std::string weight_description() const {
    switch (mwn_.kind()) {
      case meta::WeightNetKind::softmax:
        return "exp(z(loss) - z(0)) with z = MLP_lambda, the weight relative to a sample of zero loss; the "
               "batch's weights are B softmax(z) (softmax weight net)";
      case meta::WeightNetKind::monotone:
        return "exp(z(loss)) in (0, 1], the weight relative to a sample of zero loss (monotone weight net)";
      case meta::WeightNetKind::sigmoid: break;
    }
    return "sigmoid(MLP_lambda(loss)) (the Meta-Weight-Net of Shu et al. 2019)";
  }
  /// At a logging window's end (collective): the weight net's window statistics into `row`, the
  /// collapse detector, and a warning for the progress line the first time it fires.
  std::string weight_net_health(long done, std::map<std::string, double>& row);
  // Per-sample scores for scores.h5 (SampleScores): set up, add the accepted base batch, write.
  void init_scores();
  void record_scores();
  void write_scores(const std::string& path);
  void write_sample_table(const std::string& path);
  template <class... Args>
  void say(fmt::format_string<Args...> f, Args&&... args) {
    if (opt_.log && comm_.rank() == 0) {
      *opt_.log << fmt::format(f, std::forward<Args>(args)...) << std::endl;
    }
  }

  const Deck& deck_;
  const RunOptions& opt_;
  const comm::Communicator& comm_;
  Data data_;
  meta::Method method_;
  std::size_t batch_size_, meta_batch_size_, eval_batch_, workspace_;  // global batches
  std::size_t local_batch_ = 0;                                           // this rank's share
  meta::SumFn sum_;  // in-place sum over ranks (host doubles)
  std::unique_ptr<comm::GradientReducer> reducer_;
  data::EpochSampler sampler_, meta_sampler_;
  long total_steps_ = 0, eval_interval_ = 0;
  optim::ScheduleConfig schedule_;

  // Base level: θ, its gradient, the base optimizer.
  nn::Classifier<real> model_;
  Vec<real> theta_, grad_;
  std::unique_ptr<optim::Optimizer<real>> base_opt_;
  // Meta level: λ, its gradient, the meta optimizer.
  meta::MetaWeightNet<real> mwn_;
  Vec<real> lambda_, lambda_grad_;
  std::unique_ptr<optim::Optimizer<real>> meta_opt_;
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
  // Diagnostic sums (identical on every rank): cosine and norm ratio in this window and in the run.
  double window_cosine_ = 0, window_ratio_ = 0, run_cosine_ = 0, run_ratio_ = 0;
  long window_diagnoses_ = 0, run_diagnoses_ = 0;

  Batch base_, meta_;
  const std::vector<std::int64_t>* base_ids_ = nullptr;  // ids of the current base batch
  Vec<real> losses_, weights_, coef_, delta_;
  Vec<real>::HostMirror weights_host_, losses_host_;

  // Per-sample scores: the base batch's EL2N, correctness and squared gradient norms, added to the
  // run's totals once the step is accepted.
  std::unique_ptr<SampleScores> scores_;
  Vec<real> el2n_, grad_sq_, envelope_;
  Vec<int> correct_;
  Vec<real>::HostMirror el2n_host_, grad_sq_host_, coef_host_, raw_weight_host_, envelope_host_;  // allocated once
  Vec<int>::HostMirror correct_host_;
  long epoch_ = 0;  // epoch of the current step

  // Statistics of the current logging window.
  double window_base_loss_ = 0, window_meta_loss_ = 0, window_eps_ = 0;
  long window_steps_ = 0, window_meta_steps_ = 0;
  double w_clean_sum_ = 0, w_noisy_sum_ = 0;
  long w_clean_n_ = 0, w_noisy_n_ = 0;
  // The weight net's health over the window (collapse detector, docs/reweighting.md): per rank,
  // Σw, Σw², Σℓ, Σℓ², n, and the pre-activations' min, max, Σz, Σz², saturated count; and over meta
  // steps (identical on every rank) Σ‖∇λ‖ and their count.
  std::array<double, 10> wn_window_ = empty_weight_window();
  double lambda_grad_norm_sum_ = 0;
  long lambda_grad_norms_ = 0;
  long collapsed_at_step_ = -1;  // first logging window judged collapsed (-1: none)
  bool weights_spread_ = false;  // some window's weights had spread ≥ meta.collapse_spread (detector armed)
  static std::array<double, 10> empty_weight_window() {
    const double inf = std::numeric_limits<double>::infinity();
    return {0, 0, 0, 0, 0, inf, -inf, 0, 0, 0};
  }
  long meta_steps_ = 0;
  // Non-finite steps skipped (base and meta), in total and in a row.
  long nonfinite_total_ = 0, nonfinite_run_ = 0;
  // Results so far and timing (part of the checkpoint).
  RunResult result_;
  bool first_window_ = true;
  double train_seconds_ = 0;
  long start_step_ = 0;  // 0, or the step a checkpoint resumes from

 public:
  /// The complete state after `step` steps, for a checkpoint (collective: gathers per-rank counters).
  io::CheckpointData snapshot(long step);
  /// Continue from a checkpoint (same or another rank count).
  void restore(const io::CheckpointData& c);
};

void Trainer::backward_allreduce(VecU<const real> coef, VecU<const int> y) {
  reducer_->begin();
  {
    ScopedRegion region("sama::backward");  // the buckets' all-reduces start as layers complete
    model_.backward(theta_, coef, y, grad_, [this](std::size_t off, std::size_t n) { reducer_->ready(off, n); });
  }
  ScopedRegion region("sama::gradient_reduction");  // waiting for what backward did not hide
  reducer_->finish();
}

double Trainer::base_gradient() {
  const std::size_t b = base_.size;
  VecU<real> losses = slice<real>(losses_, 0, b), weights = slice<real>(weights_, 0, b), coef = slice<real>(coef_, 0, b);
  const bool grand = scores_ && scores_->collects(SampleScores::grand, epoch_);
  {
    ScopedRegion region("sama::base_forward");
    model_.losses(theta_, base_.xs(), base_.ys(), losses);  // ℓ_i(θ)
    if (method_ == meta::Method::none) ops::fill<real>(weights, 1);
    else mwn_.forward(lambda_, losses, weights, sum_);      // w_i = MWN_λ(ℓ_i), input detached
    ops::scale<real>(weights, static_cast<real>(1.0 / static_cast<double>(batch_size_)), coef);  // L = (1/B) Σ w_i ℓ_i
    if (scores_) model_.sample_errors(base_.ys(), slice<real>(el2n_, 0, b), slice<int>(correct_, 0, b));
  }
  if (grand) {  // per-sample gradient norms, accumulated by the backward pass itself
    ops::fill<real>(slice<real>(grad_sq_, 0, b), 0);
    model_.net().set_sample_grad_norms(slice<real>(grad_sq_, 0, b));
  }
  backward_allreduce(coef, base_.ys());                   // g = ∂L_base/∂θ, summed over ranks
  if (grand) model_.net().set_sample_grad_norms(VecU<real>());
  return ops::sum<real>(losses);
}

void Trainer::base_update(double lr, double loss_sum) {
  {
    ScopedRegion region("sama::optimizer_step");
    if (history_) history_->record(theta_, lambda_, slice<const real>(losses_, 0, base_.size), *base_ids_, lr);
    base_opt_->step(theta_, grad_, lr);                     // θ ← θ − u(g); keeps what D needs
    if (history_) history_->record_state(*base_opt_);       // (unrolled: θ_t, λ_t, inputs, state after)
  }
  window_base_loss_ += loss_sum;
  ++window_steps_;
  {
    ScopedRegion region("sama::weight_statistics");
    accumulate_weight_stats();
  }
  if (scores_) {
    ScopedRegion region("sama::scores");
    record_scores();
  }
}

std::array<int, 4> Trainer::agree(bool nonfinite, int stop_reason, bool time_due, bool orphaned) {
  std::array<int, 4> f{nonfinite ? 1 : 0, stop_reason, time_due ? 1 : 0, orphaned ? 1 : 0};
  if (comm_.size() > 1)
    comm::check_mpi(MPI_Allreduce(MPI_IN_PLACE, f.data(), 4, MPI_INT, MPI_MAX, comm_.get()), "MPI_Allreduce(control)",
                    comm_.get());
  return f;
}

void Trainer::meta_step() {
  double meta_loss_sum = 0;
  {
    ScopedRegion region("sama::meta_gradient");
    meta_loss_sum = meta_gradient();  // v = ∂L_meta/∂θ in grad_
  }
  ScopedRegion hypergradient_region("sama::hypergradient");
  VecU<real> v = grad_;
  const bool probe = method_ == meta::Method::sama || method_ == meta::Method::finite_difference;
  const bool diagnose = diagnosis_due();
  if (!probe || diagnose) ops::copy<real>(v, v_);  // the HVPs' sums over ranks pass through grad_
  // ∇λ L_meta by the deck's method into lambda_grad_, summed over ranks (identical everywhere).
  double epsilon = 0;
  if (probe) {
    epsilon = probe_hypergradient(v);
  } else {
    hypergradient(method_, deck_.meta.k, v_, lambda_grad_);
  }
  if (diagnose) {
    ScopedRegion region("sama::hypergradient_diagnosis");
    diagnose_hypergradient(v_);
  }
  hypergradient_region.end();
  // The λ-gradient is summed over ranks, so every rank takes the same decision.
  if (!ops::all_finite<real>(lambda_grad_) || !std::isfinite(meta_loss_sum)) {
    ++nonfinite_total_;
    return;
  }
  lambda_grad_norm_sum_ += ops::norm2<real>(lambda_grad_);
  ++lambda_grad_norms_;
  ScopedRegion region("sama::meta_optimizer_step");
  meta_opt_->step(lambda_, lambda_grad_, deck_.meta.lr);
  window_meta_loss_ += meta_loss_sum;
  window_eps_ += epsilon;
  ++window_meta_steps_;
  ++meta_steps_;
}

double Trainer::meta_gradient() {
  const std::size_t mb = meta_.size;
  const bool global = deck_.meta.strategy == "global";
  // v = ∂L_meta/∂θ on a clean meta batch (the gradient buffer is free again after the base step):
  // "local" keeps each rank's own v (the mean over its meta shard); "global" sums it over ranks.
  VecU<real> meta_losses = slice<real>(losses_, 0, mb), coef = slice<real>(coef_, 0, mb);
  model_.losses(theta_, meta_.xs(), meta_.ys(), meta_losses);
  const double meta_loss_sum = ops::sum<real>(meta_losses);
  ops::fill<real>(coef, static_cast<real>(1.0 / static_cast<double>(global ? meta_batch_size_ : mb)));
  if (global) {
    backward_allreduce(coef, meta_.ys());
  } else {
    model_.backward(theta_, coef, meta_.ys(), grad_);
  }
  return meta_loss_sum;
}

double Trainer::probe_hypergradient(VecU<real> v) {
  const std::size_t b = base_.size;
  // w = D ⊙ v (in place).
  VecU<real> w = v;
  if (method_ == meta::Method::sama) base_opt_->apply_adaptation(v, w);
  // δ_i = ∂ℓ_i/∂θ · w on this rank's shard of the last base batch, by the ± probe.
  VecU<real> delta = slice<real>(delta_, 0, b);
  const meta::ProbeInfo probe =
      meta::directional_loss_derivative<real>(model_, theta_, w, deck_.meta.alpha, base_.xs(), base_.ys(), probe_, delta);
  // ∇λ L_meta ≈ − ∂/∂λ (1/B) Σ_i w_i(λ) δ_i over the global batch: the MWN's inputs are those of the
  // base step, and its backward sums the λ-gradient over ranks (one all-reduce).
  ops::scale<real>(delta, static_cast<real>(-1.0 / static_cast<double>(batch_size_)), delta);
  mwn_.backward(lambda_, delta, lambda_grad_, sum_);
  return probe.epsilon;
}

void Trainer::hypergradient(meta::Method method, long k, VecU<const real> v, VecU<real> out) {
  const auto& m = deck_.meta;
  VecU<real> w = direction_;
  switch (method) {
    case meta::Method::sama_jvp:  // w = D ⊙ v
      base_opt_->apply_adaptation(v, w);
      break;
    case meta::Method::neumann:  // w = α Σ_{j≤K} (I − αH)^j v ≈ H⁻¹v
      bind_base_hessian();
      meta::neumann_solve<real>(*hessian_, v, k, m.neumann_alpha, *solver_, w);
      break;
    case meta::Method::cg:  // (H + μI) w = v by K CG iterations
      bind_base_hessian();
      meta::cg_solve<real>(*hessian_, v, k, m.cg_damping, *solver_, w);
      break;
    case meta::Method::unrolled:  // reverse mode through the last K base steps
      unrolled_hypergradient(v, k, out);
      return;
    default:
      fail("meta method '{}' has no λ-gradient from v here", meta::to_string(method));
  }
  // ∇λ L_meta ≈ −∂/∂λ (1/B) Σ_i w_i(λ) δ_i with δ_i = ∂ℓ_i/∂θ · w exact (forward mode), on this rank's
  // shard of the base batch; the MWN backward sums the λ-gradient over ranks.
  const std::size_t b = base_.size;
  meta::lambda_gradient_along<real>(model_, theta_, w, base_.xs(), base_.ys(), static_cast<double>(batch_size_), mwn_,
                                    lambda_, sum_, slice<real>(losses_, 0, b), slice<real>(delta_, 0, b), out);
}

void Trainer::bind_base_hessian() {
  // H = ∇²_θ Σ_i c_i ℓ_i on the base batch at θ with the base step's weights held fixed:
  // "global" c_i = w_i/B and every product summed over ranks (the global batch's Hessian);
  // "local" c_i = w_i/b on this rank's b samples (its own estimate of it), nothing summed.
  const std::size_t b = base_.size;
  const bool global = deck_.meta.strategy == "global";
  VecU<real> coef = slice<real>(hessian_coef_, 0, b);
  ops::scale<real>(slice<const real>(weights_, 0, b),
                   static_cast<real>(1.0 / static_cast<double>(global ? batch_size_ : b)), coef);
  meta::ReduceFn<real> reduce;
  if (global && comm_.size() > 1) reduce = [this](VecU<real> x) { allreduce_theta(x); };
  hessian_->bind(theta_, meta::WeightedBatch<real>{base_.xs(), base_.ys(), coef}, reduce);
}

void Trainer::unrolled_hypergradient(VecU<const real> v, long k, VecU<real> out) {
  const bool global = deck_.meta.strategy == "global";
  meta::UnrollProblem<real> pb;
  pb.model = &model_;
  pb.mwn = &mwn_;
  pb.hessian = hessian_.get();
  pb.adjoint = adjoint_.get();
  pb.load = [this](const std::vector<std::int64_t>& ids) {  // a recorded batch, gathered again
    unroll_batch_->load(data_.train, data_.norm, data_.labels.observed, ids.data(), ids.size());
    return std::make_pair(unroll_batch_->xs(), unroll_batch_->ys());
  };
  pb.global_batch = static_cast<double>(batch_size_);
  pb.hessian_batch = static_cast<double>(global ? batch_size_ : local_batch_);
  pb.sum = sum_;
  if (global && comm_.size() > 1) pb.reduce = [this](VecU<real> x) { allreduce_theta(x); };
  meta::unrolled_hypergradient<real>(pb, *history_, k, v, *unroll_ws_, out);
}

void Trainer::allreduce_theta(VecU<real> x) {
  ops::copy<real>(x, grad_);
  reducer_->begin();
  reducer_->finish();  // launches every bucket and waits
  ops::copy<real>(grad_, x);
}

void Trainer::diagnose_hypergradient(VecU<const real> v) {
  hypergradient(reference_, deck_.meta.diagnose_k, v, reference_grad_);
  const double dot = ops::dot<real>(lambda_grad_, reference_grad_);
  const double a = ops::norm2<real>(lambda_grad_), r = ops::norm2<real>(reference_grad_);
  const double cosine = dot / (a * r), ratio = a / r;
  if (!std::isfinite(cosine) || !std::isfinite(ratio)) return;  // e.g. a zero reference: nothing to compare
  window_cosine_ += cosine;
  window_ratio_ += ratio;
  ++window_diagnoses_;
  run_cosine_ += cosine;
  run_ratio_ += ratio;
  ++run_diagnoses_;
}

void Trainer::init_hypergradients() {
  const auto& m = deck_.meta;
  if (m.diagnose_every > 0) reference_ = meta::parse_method(m.diagnose_reference);
  auto uses = [&](meta::Method x) { return method_ == x || reference_ == x; };
  const bool probe_only = !uses(meta::Method::sama_jvp) && !uses(meta::Method::neumann) && !uses(meta::Method::cg) &&
                          !uses(meta::Method::unrolled);
  if (probe_only) return;
  const std::size_t n = model_.num_params(), nl = mwn_.num_params();
  v_ = make_vec<real>("sama::meta_v", n);
  direction_ = make_vec<real>("sama::meta_direction", n);
  if (reference_ != meta::Method::none) reference_grad_ = make_vec<real>("sama::reference_lambda_grad", nl);
  if (uses(meta::Method::neumann) || uses(meta::Method::cg) || uses(meta::Method::unrolled)) {
    hessian_ = std::make_unique<meta::HessianProduct<real>>(model_, meta::parse_hvp_mode(m.hvp), m.hvp_radius);
    hessian_coef_ = make_vec<real>("sama::hessian_coef", workspace_);
  }
  // Forward mode's workspace (every method here takes δ by loss_jvp; exact HVPs need more) now, so
  // that no step allocates a View.
  model_.reserve_forward_mode(hessian_ && meta::parse_hvp_mode(m.hvp) == meta::HvpMode::exact);
  if (uses(meta::Method::neumann) || uses(meta::Method::cg)) solver_ = std::make_unique<meta::SolverWorkspace<real>>(n);
  if (uses(meta::Method::unrolled)) {
    adjoint_ = std::make_unique<meta::OptimizerAdjoint<real>>(deck_.optimizer.cfg, n);
    const long k = std::max(method_ == meta::Method::unrolled ? m.k : 0L,
                            reference_ == meta::Method::unrolled ? m.diagnose_k : 0L);
    history_ = std::make_unique<meta::UnrollHistory<real>>(static_cast<std::size_t>(k), n, nl, local_batch_,
                                                           adjoint_->needs());
    unroll_ws_ = std::make_unique<meta::UnrollWorkspace<real>>(n, nl, workspace_);
    unroll_batch_ = std::make_unique<Batch>(local_batch_, data_.train.features());
  }
}

// ------------------------------------------------------------------------------------ checkpoints

namespace {
/// Per-rank window counters, in a fixed order.
constexpr int kWindowFields = 9;
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
/// Threads per rank, BLAS threads, Kokkos concurrency: what decides the order of threaded sums.
std::vector<std::int64_t> thread_layout() {
  return {threads::applied().threads_per_rank, blas_threads(), ExecSpace().concurrency()};
}
}  // namespace

io::CheckpointData Trainer::snapshot(long step) {
  io::CheckpointData c;
  c.step = step;
  c.ranks = comm_.size();
  c.deck = to_toml(deck_);
  c.floats["theta"] = to_floats(theta_);
  c.floats["lambda"] = to_floats(lambda_);
  auto save_opt = [&](const std::string& prefix, const optim::Optimizer<real>& o) {
    for (const auto& [name, v] : o.state()) c.floats[prefix + "." + name] = to_floats(v);
    c.ints[prefix + ".steps"] = {o.steps()};
    c.doubles[prefix + ".last_lr"] = {o.last_lr()};
  };
  save_opt("base_optimizer", *base_opt_);
  save_opt("meta_optimizer", *meta_opt_);
  c.ints["sampler"] = {sampler_.epoch(), static_cast<std::int64_t>(sampler_.position()), meta_sampler_.epoch(),
                       static_cast<std::int64_t>(meta_sampler_.position())};
  c.ints["counters"] = {meta_steps_, nonfinite_total_, nonfinite_run_, first_window_ ? 1 : 0, window_steps_,
                        window_meta_steps_};
  // Threads per rank decide the order of threaded GEMM and reduction sums: a resume with others is
  // correct but not bitwise (noted when resuming).
  c.ints["threads"] = thread_layout();
  const RunResult& r = result_;
  c.doubles["results"] = {r.final_test_accuracy, r.best_test_accuracy, r.final_test_loss,  r.final_train_loss,
                          r.first_train_loss,    r.mean_weight_clean,  r.mean_weight_noisy, train_seconds_};
  // Window accumulators differ per rank: gather them so that a resume at the same rank count is bitwise.
  const double mine[kWindowFields] = {window_base_loss_, window_meta_loss_, window_eps_, w_clean_sum_,
                                      double(w_clean_n_),  w_noisy_sum_,      double(w_noisy_n_), 0, 0};
  std::vector<double> all(static_cast<std::size_t>(kWindowFields * comm_.size()));
  comm::check_mpi(MPI_Gather(mine, kWindowFields, MPI_DOUBLE, all.data(), kWindowFields, MPI_DOUBLE, 0, comm_.get()),
                  "MPI_Gather(checkpoint counters)", comm_.get());
  c.doubles["rank_windows"] = all;
  if (scores_) scores_->save(c, comm_);  // totals over ranks (exact: fixed point)
  // Hypergradient diagnostic sums (identical on every rank) and the unroll history.
  c.doubles["hypergrad_diagnostics"] = {window_cosine_, window_ratio_, double(window_diagnoses_),
                                        run_cosine_,    run_ratio_,    double(run_diagnoses_)};
  // The weight net's health: its window per rank (gathered, like the counters above), the λ-gradient
  // norms (identical on every rank) and the step the collapse detector fired at.
  std::vector<double> ww(wn_window_.size() * static_cast<std::size_t>(comm_.size()));
  comm::check_mpi(MPI_Gather(wn_window_.data(), static_cast<int>(wn_window_.size()), MPI_DOUBLE, ww.data(),
                             static_cast<int>(wn_window_.size()), MPI_DOUBLE, 0, comm_.get()),
                  "MPI_Gather(checkpoint weight window)", comm_.get());
  c.doubles["rank_weight_windows"] = ww;
  c.doubles["weight_net_health"] = {lambda_grad_norm_sum_, double(lambda_grad_norms_), double(collapsed_at_step_),
                                    weights_spread_ ? 1.0 : 0.0};
  if (history_) save_history(c);
  return c;
}

void Trainer::restore(const io::CheckpointData& c) {
  const std::string& src = c.source;
  from_floats(c.f("theta"), theta_, "theta", src);
  from_floats(c.f("lambda"), lambda_, "lambda", src);
  auto load_opt = [&](const std::string& prefix, optim::Optimizer<real>& o) {
    for (const auto& [name, v] : o.state()) from_floats(c.f(prefix + "." + name), v, prefix + "." + name, src);
    o.set_steps(static_cast<long>(c.i(prefix + ".steps", 1)[0]));
    o.set_last_lr(c.d(prefix + ".last_lr", 1)[0]);
  };
  load_opt("base_optimizer", *base_opt_);
  load_opt("meta_optimizer", *meta_opt_);
  const auto& smp = c.i("sampler", 4);
  sampler_.seek(smp[0], static_cast<std::size_t>(smp[1]));
  meta_sampler_.seek(smp[2], static_cast<std::size_t>(smp[3]));
  const auto& k = c.i("counters", 6);
  meta_steps_ = k[0];
  nonfinite_total_ = k[1];
  nonfinite_run_ = k[2];
  first_window_ = k[3] != 0;
  window_steps_ = k[4];
  window_meta_steps_ = k[5];
  const auto& res = c.d("results", 8);
  result_.final_test_accuracy = res[0];
  result_.best_test_accuracy = res[1];
  result_.final_test_loss = res[2];
  result_.final_train_loss = res[3];
  result_.first_train_loss = res[4];
  result_.mean_weight_clean = res[5];
  result_.mean_weight_noisy = res[6];
  train_seconds_ = res[7];
  // Same rank count: each rank takes its own window counters back. Another rank count: rank 0 takes the
  // totals (the logged window means are then equal up to summation order).
  const auto& win = c.d("rank_windows", static_cast<std::size_t>(kWindowFields * c.ranks));
  double mine[kWindowFields] = {};
  if (c.ranks == comm_.size()) {
    std::copy_n(win.begin() + kWindowFields * comm_.rank(), kWindowFields, mine);
  } else if (comm_.rank() == 0) {
    for (int r = 0; r < c.ranks; ++r)
      for (int f = 0; f < kWindowFields; ++f) mine[f] += win[static_cast<std::size_t>(kWindowFields * r + f)];
  }
  window_base_loss_ = mine[0];
  window_meta_loss_ = mine[1];
  window_eps_ = mine[2];
  w_clean_sum_ = mine[3];
  w_clean_n_ = static_cast<long>(mine[4]);
  w_noisy_sum_ = mine[5];
  w_noisy_n_ = static_cast<long>(mine[6]);
  if (scores_) scores_->restore(c, comm_);
  if (c.doubles.count("hypergrad_diagnostics")) {  // (absent from checkpoints of older versions)
    const auto& hd = c.d("hypergrad_diagnostics", 6);
    window_cosine_ = hd[0];
    window_ratio_ = hd[1];
    window_diagnoses_ = static_cast<long>(hd[2]);
    run_cosine_ = hd[3];
    run_ratio_ = hd[4];
    run_diagnoses_ = static_cast<long>(hd[5]);
  }
  if (c.doubles.count("weight_net_health")) {  // (absent from checkpoints of older versions)
    const auto& h = c.d("weight_net_health", 4);
    lambda_grad_norm_sum_ = h[0];
    lambda_grad_norms_ = static_cast<long>(h[1]);
    collapsed_at_step_ = static_cast<long>(h[2]);
    weights_spread_ = h[3] != 0;
    const std::size_t nf = wn_window_.size();
    const auto& ww = c.d("rank_weight_windows", nf * static_cast<std::size_t>(c.ranks));
    wn_window_ = empty_weight_window();
    if (c.ranks == comm_.size()) {
      std::copy_n(ww.begin() + static_cast<long>(nf) * comm_.rank(), nf, wn_window_.begin());
    } else if (comm_.rank() == 0) {  // another rank count: rank 0 takes the totals, minima and maxima
      for (int r = 0; r < c.ranks; ++r) {
        const double* x = ww.data() + nf * static_cast<std::size_t>(r);
        for (std::size_t f = 0; f < nf; ++f) {
          if (f == 5) wn_window_[f] = std::min(wn_window_[f], x[f]);
          else if (f == 6) wn_window_[f] = std::max(wn_window_[f], x[f]);
          else wn_window_[f] += x[f];
        }
      }
    }
  }
  if (history_) restore_history(c);
  start_step_ = c.step;
  result_.resumed_from = c.step;
}

// The unroll history, oldest step first: θ_t, λ_t and the optimizer state (replicated), the step's
// learning rate and count, and the batch's ids and Meta-Weight-Net inputs gathered over ranks in rank
// order, i.e. as the global batch. A resume at another rank count takes its own slice of each.
void Trainer::save_history(io::CheckpointData& c) {
  const std::size_t count = history_->size(), lb = local_batch_;
  c.ints["unroll.count"] = {static_cast<std::int64_t>(count)};
  for (std::size_t j = 0; j < count; ++j) {
    const auto& e = history_->entry(count - 1 - j);
    const std::string key = "unroll." + std::to_string(j) + ".";
    c.floats[key + "theta"] = to_floats(e.theta);
    c.floats[key + "lambda"] = to_floats(e.lambda);
    for (std::size_t s = 0; s < e.state.size(); ++s)
      c.floats[key + "state." + history_->state_names()[s]] = to_floats(e.state[s]);
    c.doubles[key + "lr"] = {e.lr};
    c.ints[key + "steps"] = {e.steps};
    std::vector<std::int64_t> ids(lb * static_cast<std::size_t>(comm_.size()));
    std::vector<float> losses(ids.size());
    const auto mine = to_floats(Kokkos::subview(e.losses, std::make_pair(std::size_t(0), lb)));
    comm::check_mpi(MPI_Gather(e.ids.data(), static_cast<int>(lb), MPI_INT64_T, ids.data(), static_cast<int>(lb),
                               MPI_INT64_T, 0, comm_.get()),
                    "MPI_Gather(unroll history ids)", comm_.get());
    comm::check_mpi(MPI_Gather(mine.data(), static_cast<int>(lb), MPI_FLOAT, losses.data(), static_cast<int>(lb),
                               MPI_FLOAT, 0, comm_.get()),
                    "MPI_Gather(unroll history losses)", comm_.get());
    c.ints[key + "ids"] = ids;
    c.floats[key + "losses"] = losses;
  }
}

void Trainer::restore_history(const io::CheckpointData& c) {
  const std::string& src = c.source;
  history_->clear();
  const std::size_t count = static_cast<std::size_t>(c.i("unroll.count", 1)[0]), lb = local_batch_;
  const std::size_t first = lb * static_cast<std::size_t>(comm_.rank());
  for (std::size_t j = 0; j < count; ++j) {
    auto& e = history_->push();
    const std::string key = "unroll." + std::to_string(j) + ".";
    from_floats(c.f(key + "theta"), e.theta, key + "theta", src);
    from_floats(c.f(key + "lambda"), e.lambda, key + "lambda", src);
    for (std::size_t s = 0; s < e.state.size(); ++s) {
      const std::string name = key + "state." + history_->state_names()[s];
      from_floats(c.f(name), e.state[s], name, src);
    }
    e.lr = c.d(key + "lr", 1)[0];
    e.steps = static_cast<long>(c.i(key + "steps", 1)[0]);
    const auto& ids = c.i(key + "ids", static_cast<std::size_t>(batch_size_));
    const auto& losses = c.f(key + "losses", static_cast<std::size_t>(batch_size_));
    e.ids.assign(ids.begin() + static_cast<long>(first), ids.begin() + static_cast<long>(first + lb));
    from_floats(std::vector<float>(losses.begin() + static_cast<long>(first), losses.begin() + static_cast<long>(first + lb)),
                Kokkos::subview(e.losses, std::make_pair(std::size_t(0), lb)), key + "losses", src);
  }
}

void Trainer::write_checkpoint(long step, const char* why) {
  Timer t;
  io::CheckpointData c = snapshot(step);  // collective
  std::string path;
  if (comm_.rank() == 0)
    path = io::write_checkpoint(io::checkpoint_dir(opt_.out_dir), c, static_cast<int>(deck_.checkpoint.keep));
  // No rank goes on before the checkpoint is committed (a failure on rank 0 aborts the job).
  comm_.barrier();
  say("checkpoint at step {} ({}): {} in {:.2f} s", step, why, path, t.seconds());
}

void Trainer::check_replicas(long step) {
  // FNV-1a over the bits of θ and λ; every rank must hold the same value.
  auto hash = [](const Vec<real>& v, std::uint64_t h) {
    auto host = Kokkos::create_mirror_view_and_copy(HostSpace(), v);
    return io::fnv1a64(host.data(), host.extent(0) * sizeof(real), h);
  };
  const std::uint64_t h = hash(lambda_, hash(theta_, io::kFnvOffset));
  unsigned long long lo = h, hi = h;
  comm::check_mpi(MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, comm_.get()),
                  "MPI_Allreduce(replica check)", comm_.get());
  comm::check_mpi(MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, comm_.get()),
                  "MPI_Allreduce(replica check)", comm_.get());
  if (lo != hi) fail("replica check at step {}: θ/λ differ between ranks (hash {:016x} on this rank)", step, h);
}

void Trainer::accumulate_weight_stats() {
  if (method_ == meta::Method::none) return;
  Kokkos::deep_copy(weights_host_, weights_);
  Kokkos::deep_copy(losses_host_, losses_);
  const auto& ids = *base_ids_;
  auto& ww = wn_window_;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const double w = weights_host_(i), l = losses_host_(i);
    if (data_.labels.is_noisy[static_cast<std::size_t>(ids[i])]) {
      w_noisy_sum_ += w;
      ++w_noisy_n_;
    } else {
      w_clean_sum_ += w;
      ++w_clean_n_;
    }
    ww[0] += w;
    ww[1] += w * w;
    ww[2] += l;
    ww[3] += l * l;
    ww[4] += 1;
  }
  const meta::LogitStats z = mwn_.last_logit_stats();
  if (z.count > 0) {
    ww[5] = std::min(ww[5], z.min);
    ww[6] = std::max(ww[6], z.max);
    ww[7] += z.sum;
    ww[8] += z.sum_sq;
    ww[9] += z.saturated;
  }
}

std::string Trainer::weight_net_health(long done, std::map<std::string, double>& row) {
  std::array<double, 10> g = wn_window_;
  double sums[8] = {g[0], g[1], g[2], g[3], g[4], g[7], g[8], g[9]};
  comm_.allreduce_sum(sums, 8);
  double mn = g[5], mx = g[6];
  if (comm_.size() > 1) {
    comm::check_mpi(MPI_Allreduce(MPI_IN_PLACE, &mn, 1, MPI_DOUBLE, MPI_MIN, comm_.get()), "MPI_Allreduce(min)",
                    comm_.get());
    comm::check_mpi(MPI_Allreduce(MPI_IN_PLACE, &mx, 1, MPI_DOUBLE, MPI_MAX, comm_.get()), "MPI_Allreduce(max)",
                    comm_.get());
  }
  wn_window_ = empty_weight_window();
  const double n = sums[4];
  std::string note;
  if (n > 0) {
    auto stdev = [n](double s, double s2) { return std::sqrt(std::max(0.0, s2 / n - (s / n) * (s / n))); };
    const double mean_w = sums[0] / n;
    const double spread = mean_w > 0 ? stdev(sums[0], sums[1]) / mean_w : 0;  // coefficient of variation
    const double loss_spread = stdev(sums[2], sums[3]);
    const double saturated = sums[7] / n;
    row["weight_spread"] = spread;
    row["loss_spread"] = loss_spread;
    row["logit_min"] = mn;
    row["logit_mean"] = sums[5] / n;
    row["logit_max"] = mx;
    row["logit_std"] = stdev(sums[5], sums[6]);
    row["weight_saturated"] = saturated;
    // Collapsed: the weights told the samples apart in an earlier window and no longer do although
    // their losses differ, or every weight in the window sits where the weight net's gradient has
    // vanished. (Before the weight net has learned anything its weights are nearly equal too: that
    // is a start, not a collapse, so the spread test arms only once the spread has been reached.)
    const bool collapsed =
        (weights_spread_ && spread < deck_.meta.collapse_spread && loss_spread > kCollapseLossSpread) ||
        saturated >= 1.0;
    if (spread >= deck_.meta.collapse_spread) weights_spread_ = true;
    row["weight_collapsed"] = collapsed ? 1 : 0;
    if (collapsed && collapsed_at_step_ < 0) {
      collapsed_at_step_ = done;
      note = fmt::format(" | WARNING: meta weights collapsed (spread {:.3g} < {:.3g} over losses of spread {:.3g}, "
                         "{:.0f}% saturated)",
                         spread, deck_.meta.collapse_spread, loss_spread, 100 * saturated);
    }
  }
  if (lambda_grad_norms_ > 0) row["lambda_grad_norm"] = lambda_grad_norm_sum_ / double(lambda_grad_norms_);
  lambda_grad_norm_sum_ = 0;
  lambda_grad_norms_ = 0;
  return note;
}

void Trainer::evaluate(double& accuracy, double& loss) {
  const data::Dataset& test = data_.test;
  std::vector<std::int64_t> ids(eval_batch_);
  double correct = 0, loss_sum = 0;
  Batch& batch = meta_;  // the meta batch buffer is free between steps
  // Rank r evaluates the contiguous shard [first, last) of the test set; counts are summed.
  const std::size_t ranks = static_cast<std::size_t>(comm_.size()), r = static_cast<std::size_t>(comm_.rank());
  const std::size_t first = test.n * r / ranks, last = test.n * (r + 1) / ranks;
  for (std::size_t start = first; start < last; start += eval_batch_) {
    const std::size_t count = std::min(eval_batch_, last - start);
    for (std::size_t i = 0; i < count; ++i) ids[i] = static_cast<std::int64_t>(start + i);
    batch.load(test, data_.norm, test.labels, ids.data(), count);
    VecU<real> losses = slice<real>(losses_, 0, count);
    model_.losses(theta_, batch.xs(), batch.ys(), losses);
    correct += static_cast<double>(model_.count_correct(batch.ys()));
    loss_sum += ops::sum<real>(losses);
  }
  double totals[2] = {correct, loss_sum};
  comm_.allreduce_sum(totals, 2);
  correct = totals[0];
  loss_sum = totals[1];
  accuracy = correct / static_cast<double>(test.n);
  loss = loss_sum / static_cast<double>(test.n);
}

// ------------------------------------------------------------------------------------ sample scores

void Trainer::init_scores() {
  const auto& sc = deck_.scores;
  SampleScores::Windows w;
  const long bpe = static_cast<long>(sampler_.batches_per_epoch());
  w.epochs = std::max(1L, (total_steps_ + bpe - 1) / bpe);
  // A window given in the deck must lie inside the run; the defaults shrink to fit short runs.
  auto window = [&](const std::vector<long>& given, long first, long last, const char* key, long& f, long& l) {
    if (given[0] >= 0) {
      if (given[1] > w.epochs)
        fail("{}: {} = [{}, {}] reaches past this run's {} epochs", deck_.file, key, given[0], given[1], w.epochs);
      f = given[0];
      l = given[1];
    } else {
      f = std::min(first, w.epochs - 1);
      l = std::max(f + 1, std::min(last, w.epochs));
    }
  };
  window(sc.early_epochs, 1, 5, "scores.early_epochs", w.early_first, w.early_last);
  // The mean weight prunes clean data best over EL2N's early epochs (docs/reweighting.md), its default
  // window; the noise detectors average the whole run.
  window(sc.meta_weight_epochs, w.early_first, w.early_last, "scores.meta_weight_epochs", w.meta_first, w.meta_last);
  window(sc.detection_epochs, 0, w.epochs, "scores.detection_epochs", w.detect_first, w.detect_last);
  scores_ = std::make_unique<SampleScores>(data_.split.train_ids, data_.train.n, w);
  el2n_ = make_vec<real>("sama::el2n", workspace_);
  grad_sq_ = make_vec<real>("sama::grad_sq", workspace_);
  correct_ = Vec<int>("sama::correct", workspace_);
  el2n_host_ = Kokkos::create_mirror_view(el2n_);
  grad_sq_host_ = Kokkos::create_mirror_view(grad_sq_);
  coef_host_ = Kokkos::create_mirror_view(coef_);
  raw_weight_host_ = Vec<real>::HostMirror("sama::raw_weight_host", workspace_);
  if (method_ != meta::Method::none) {
    envelope_ = make_vec<real>("sama::envelope", workspace_);
    envelope_host_ = Kokkos::create_mirror_view(envelope_);
  }
  correct_host_ = Kokkos::create_mirror_view(correct_);
}

void Trainer::record_scores() {
  const auto& ids = *base_ids_;
  const std::size_t b = ids.size();
  // Host copies of the first b entries, into buffers allocated once (no copy at all where the
  // execution space's memory is the host's), and only of what this epoch's scores need.
  const auto fetch = [b](const auto& host, const auto& dev) {
    const auto first = std::make_pair(std::size_t(0), b);
    Kokkos::deep_copy(Kokkos::subview(host, first), Kokkos::subview(dev, first));
  };
  SampleScores& s = *scores_;
  const bool grand = s.collects(SampleScores::grand, epoch_), early = s.collects(SampleScores::el2n, epoch_);
  const bool mean_weight = method_ != meta::Method::none && s.collects(SampleScores::meta_weight, epoch_);
  const bool detect = method_ != meta::Method::none && s.collects(SampleScores::meta_weight_envelope, epoch_);
  const double weight_cap = s.weight_cap();
  fetch(losses_host_, losses_);
  fetch(correct_host_, correct_);
  if (early) fetch(el2n_host_, el2n_);
  if (grand) {
    fetch(grad_sq_host_, grad_sq_);
    fetch(coef_host_, coef_);
  }
  if (mean_weight || detect) fetch(raw_weight_host_, mwn_.last_log_weights());
  if (detect) {
    mwn_.log_weight_envelope(lambda_, slice<real>(envelope_, 0, b));
    fetch(envelope_host_, envelope_);
  }
  for (std::size_t i = 0; i < b; ++i) {
    s.add(SampleScores::loss, ids[i], losses_host_(i));
    s.add_correct(ids[i], epoch_, correct_host_(i) != 0);
    if (early) s.add(SampleScores::el2n, ids[i], el2n_host_(i));
    // The backward saw coef_i ∂ℓ_i/∂θ; a zero coefficient leaves the norm unknown (not counted).
    if (grand && coef_host_(i) != 0)
      s.add(SampleScores::grand, ids[i], std::sqrt(double(grad_sq_host_(i))) / std::abs(double(coef_host_(i))));
    if (mean_weight) s.add(SampleScores::meta_weight, ids[i], std::min(std::exp(double(raw_weight_host_(i))), weight_cap));
    if (detect) {
      s.add(SampleScores::meta_log_weight, ids[i], raw_weight_host_(i));
      s.add(SampleScores::meta_weight_envelope, ids[i], envelope_host_(i));
    }
  }
}

void Trainer::write_scores(const std::string& path) {
  const SampleScores::Block blk = scores_->reduce_block(comm_);  // collective
  const auto& w = scores_->windows();
  io::ScoresBlock out;
  out.total = scores_->rows();
  out.first = blk.first;
  for (std::size_t i = 0; i < blk.count; ++i) {
    const std::int64_t id = scores_->ids()[blk.first + i];
    const auto k = static_cast<std::size_t>(id);
    out.sample_id.push_back(id);
    out.label_observed.push_back(data_.labels.observed[k]);
    out.label_true.push_back(data_.labels.truth[k]);
    out.is_noisy.push_back(data_.labels.is_noisy[k]);
  }
  auto column = [&](const std::string& name, std::vector<double> values, const std::string& description,
                    long first, long last) {
    io::ScoresBlock::Column c;
    c.name = name;
    c.values = std::move(values);
    c.attributes.text = {{"description", description},
                         {"window", fmt::format("epochs [{}, {}) of {} (zero-based)", first, last, w.epochs)},
                         {"deck", deck_.file}};
    c.attributes.number = {{"window_first_epoch", double(first)}, {"window_last_epoch", double(last)},
                           {"ranks", double(comm_.size())}, {"seed", double(deck_.train.seed)}};
    out.scores.push_back(std::move(c));
  };
  if (method_ != meta::Method::none) {
    column("meta_weight", blk.mean[SampleScores::meta_weight],
           fmt::format("mean over the visits in the window of the un-normalised weight (the arithmetic mean; a visit "
                       "counts at most {:g}), the weight being {}; the pruning score: high where the meta-learner "
                       "up-weighted the sample early in training (the window of EL2N by default)",
                       scores_->weight_cap(), weight_description()),
           w.meta_first, w.meta_last);
    column("meta_log_weight", blk.mean[SampleScores::meta_log_weight],
           "mean over the visits in the window of the log of the un-normalised weight (not clamped; the log of the "
           "geometric mean weight: dominated by the visits with the lowest weight)",
           w.detect_first, w.detect_last);
  }
  if (method_ != meta::Method::none)
    column("meta_weight_envelope", blk.mean[SampleScores::meta_weight_envelope],
           "mean over the visits in the window of the non-increasing envelope of the log-weight: the log of the "
           "largest weight the net gives to any loss at least the sample's (the learned weight's falling side, "
           "flat left of its peak; a noise detector, low = noisy)",
           w.detect_first, w.detect_last);
  column("el2n", blk.mean[SampleScores::el2n],
         "mean EL2N ||softmax(z) - onehot(observed label)||_2 at each visit in the window", w.early_first, w.early_last);
  column("grand", blk.mean[SampleScores::grand],
         "mean GraNd: the exact per-sample gradient norm ||d loss_i / d theta||_2 over all parameters (every "
         "Linear layer's weights and biases) at each visit in the window",
         w.early_first, w.early_last);
  column("forgetting", blk.forgetting,
         "forgetting events: visits classified wrongly (observed label) right after a visit classified correctly; "
         "never classified correctly = the number of epochs; never visited = NaN",
         0, w.epochs);
  column("loss", blk.mean[SampleScores::loss], "mean per-sample loss (observed label) at each visit", 0, w.epochs);
  io::Attributes root;
  root.text = {{"method", deck_.meta.method}, {"deck", deck_.file}, {"data_source", deck_.data.source},
               {"data_path", deck_.data.source == "hdf5" ? deck_.data.train_file : deck_.data.path},
               {"noise_type", deck_.data.noise_type}, {"keep_mask", deck_.data.keep_mask},
               {"description", "per-sample scores of a sama training run (one row per training sample)"}};
  root.number = {{"noise_rate", deck_.data.noise_rate}, {"seed", double(deck_.train.seed)},
                 {"data_seed", double(data_seed(deck_))},
                 {"ranks", double(comm_.size())}, {"epochs", double(w.epochs)}, {"steps", double(total_steps_)}};
  io::write_scores_file(path, out, root, comm_.get());
}

void Trainer::write_sample_table(const std::string& path) {
  const auto& ids_all = data_.split.train_ids;
  io::SampleTable t;
  t.sample_id = ids_all;
  t.meta_weight.resize(ids_all.size());
  t.log_weight.resize(ids_all.size());
  t.log_weight_envelope.resize(ids_all.size());
  Vec<real>::HostMirror log_weight_host("sama::log_weight_host", eval_batch_), envelope_host("sama::envelope_host", eval_batch_);
  t.loss.resize(ids_all.size());
  for (std::size_t start = 0; start < ids_all.size(); start += eval_batch_) {
    const std::size_t count = std::min(eval_batch_, ids_all.size() - start);
    meta_.load(data_.train, data_.norm, data_.labels.observed, ids_all.data() + start, count);
    VecU<real> losses = slice<real>(losses_, 0, count), w = slice<real>(weights_, 0, count);
    model_.losses(theta_, meta_.xs(), meta_.ys(), losses);
    if (method_ == meta::Method::none) ops::fill<real>(w, 1);
    else mwn_.scores(lambda_, losses, w);
    Kokkos::deep_copy(losses_host_, losses_);
    Kokkos::deep_copy(weights_host_, weights_);
    if (method_ != meta::Method::none) {
      const auto first = std::make_pair(std::size_t(0), count);
      Kokkos::deep_copy(Kokkos::subview(log_weight_host, first), mwn_.last_log_weights());
      VecU<real> env = slice<real>(delta_, 0, count);  // the probe's δ buffer is free once training ended
      mwn_.log_weight_envelope(lambda_, env);
      Kokkos::deep_copy(Kokkos::subview(envelope_host, first), env);
    }
    for (std::size_t i = 0; i < count; ++i) {
      t.loss[start + i] = losses_host_(i);
      t.meta_weight[start + i] = weights_host_(i);
      t.log_weight[start + i] = method_ == meta::Method::none ? 0.0f : log_weight_host(i);
      t.log_weight_envelope[start + i] = method_ == meta::Method::none ? 0.0f : envelope_host(i);
    }
  }
  for (auto id : ids_all) {
    const auto k = static_cast<std::size_t>(id);
    t.label_observed.push_back(data_.labels.observed[k]);
    t.label_true.push_back(data_.labels.truth[k]);
    t.is_noisy.push_back(data_.labels.is_noisy[k]);
  }
  io::write_sample_table(path, t,
                         {{"method", deck_.meta.method},
                          {"seed", std::to_string(deck_.train.seed)},
                          {"noise_type", deck_.data.noise_type},
                          {"noise_rate", fmt::format("{}", deck_.data.noise_rate)},
                          {"deck", deck_.file},
                          {"meta_weight", method_ == meta::Method::none
                                              ? std::string("1 (method none)")
                                              : "un-normalised weight at the end of training: " + weight_description()}});
}

void Trainer::log_and_evaluate(long done, double lr, bool log_now, bool eval_now, double window_s, double elapsed_s,
                               io::MetricsWriter& metrics) {
  RunResult& r = result_;
  std::map<std::string, double> row{{"step", double(done)}, {"epoch", double(done) / sampler_.batches_per_epoch()},
                                    {"lr", lr}, {"elapsed_s", elapsed_s}};
  if (log_now) {
    const double sps = double(window_steps_ * batch_size_) / std::max(window_s, 1e-9);
    // Window statistics summed over ranks (each rank saw its shard of every batch).
    double w[7] = {window_base_loss_, window_meta_loss_, window_eps_, w_clean_sum_, double(w_clean_n_),
                   w_noisy_sum_, double(w_noisy_n_)};
    comm_.allreduce_sum(w, 7);
    const double base_loss = window_steps_ ? w[0] / (double(window_steps_) * double(batch_size_)) : NAN;
    const double meta_loss = window_meta_steps_ ? w[1] / (double(window_meta_steps_) * double(meta_batch_size_)) : NAN;
    const double eps = window_meta_steps_ ? w[2] / (double(window_meta_steps_) * comm_.size()) : NAN;
    const double wc = w[4] > 0 ? w[3] / w[4] : NAN, wn = w[6] > 0 ? w[5] / w[6] : NAN;
    const double eta = double(total_steps_ - done) * batch_size_ / std::max(sps, 1e-9);
    row.insert({{"base_loss", base_loss}, {"meta_loss", meta_loss}, {"weight_clean", wc}, {"weight_noisy", wn},
                {"epsilon", eps}, {"samples_per_s", sps}, {"nonfinite_steps", double(nonfinite_total_)}});
    std::string comm_note;
    if (method_ != meta::Method::none) comm_note += weight_net_health(done, row);
    if (window_diagnoses_ > 0) {  // the method's λ-gradient against the reference (mean over the window)
      row["hypergrad_cosine"] = window_cosine_ / double(window_diagnoses_);
      row["hypergrad_norm_ratio"] = window_ratio_ / double(window_diagnoses_);
      comm_note += fmt::format(" | hypergrad vs {} cos {:.3f} ratio {:.3g}", deck_.meta.diagnose_reference,
                               row["hypergrad_cosine"], row["hypergrad_norm_ratio"]);
    }
    window_cosine_ = window_ratio_ = 0;
    window_diagnoses_ = 0;
    if (comm_.size() > 1) {
      row["comm_hidden"] = reducer_->hidden_fraction();
      comm_note += fmt::format(" | comm hidden {:.0f}%", 100 * reducer_->hidden_fraction());
    }
    say("step {}/{} ({:.0f}%) epoch {:.2f} | lr {:.3g} | base loss {:.4f} | meta loss {:.4f} | weight clean {:.3f} "
        "noisy {:.3f} | {:.0f} samples/s{} | ETA {}",
        done, total_steps_, 100.0 * done / total_steps_, row["epoch"], lr, base_loss, meta_loss, wc, wn, sps,
        comm_note, format_duration(eta));
    if (first_window_) r.first_train_loss = base_loss;
    first_window_ = false;
    r.final_train_loss = base_loss;
    r.mean_weight_clean = wc;
    r.mean_weight_noisy = wn;
    window_base_loss_ = window_meta_loss_ = window_eps_ = 0;
    window_steps_ = window_meta_steps_ = 0;
    w_clean_sum_ = w_noisy_sum_ = 0;
    w_clean_n_ = w_noisy_n_ = 0;
  }
  if (eval_now) {
    double acc = 0, loss = 0;
    {
      ScopedRegion region("sama::evaluate");
      evaluate(acc, loss);
    }
    r.final_test_accuracy = acc;
    r.final_test_loss = loss;
    r.best_test_accuracy = std::max(r.best_test_accuracy, acc);
    row["test_accuracy"] = acc;
    row["test_loss"] = loss;
    say("eval at step {} epoch {:.2f}: test accuracy {:.4f} (best {:.4f}), test loss {:.4f}", done, row["epoch"], acc,
        r.best_test_accuracy, loss);
  }
  if (metrics.is_open()) metrics.row(row);
}

RunResult Trainer::run() {
  result_.method = deck_.meta.method;
  result_.ranks = comm_.size();
  const bool write = !opt_.out_dir.empty() && comm_.rank() == 0;  // rank 0 writes the shared files
  namespace fs = std::filesystem;
  io::MetricsWriter metrics;
  if (write) {
    const std::string path = (fs::path(opt_.out_dir) / "metrics.csv").string();
    const std::vector<std::string> columns{"step",        "epoch",         "lr",          "base_loss",
                                           "meta_loss",   "weight_clean",  "weight_noisy", "epsilon",
                                           "samples_per_s", "comm_hidden", "nonfinite_steps", "test_accuracy",
                                           "test_loss",   "elapsed_s",     "hypergrad_cosine", "hypergrad_norm_ratio",
                                           "weight_spread", "loss_spread", "logit_min", "logit_mean", "logit_max",
                                           "logit_std", "weight_saturated", "weight_collapsed", "lambda_grad_norm"};
    // A resumed run keeps the rows up to its checkpoint and appends after them.
    const bool continue_file = start_step_ > 0 && fs::exists(path);
    if (continue_file) io::truncate_metrics(path, start_step_);
    metrics = io::MetricsWriter(path, columns, continue_file);
  }
  say("sama: {} on {} ({} train, {} meta, {} test samples, {} features, {} classes), noise {} {:.2f}",
      deck_.meta.method, data_.train.source, data_.split.train_ids.size(), data_.split.meta_ids.size(),
      data_.test.n, data_.train.features(), data_.train.num_classes, deck_.data.noise_type, deck_.data.noise_rate);
  if (!data_.train.checksum.empty())
    say("sama: data read in full and checked: {} {}, {} {}", data_.train.source, data_.train.checksum,
        data_.test.source, data_.test.checksum);
  if (!deck_.data.keep_mask.empty())
    say("sama: training on the {} of {} training samples kept by {}", data_.kept.size(), data_.split.train_ids.size(),
        deck_.data.keep_mask);
  say("sama: model {} ({} parameters), Meta-Weight-Net {} parameters, {} steps of batch {} ({} per epoch)",
      fmt::join(widths_of(deck_, data_.train.features(), static_cast<std::size_t>(data_.train.num_classes)), "-"), model_.num_params(), mwn_.num_params(), total_steps_, batch_size_,
      sampler_.batches_per_epoch());
  say("sama: BLAS core {}", blas::blas_core_report());
  say("sama: threads {}", threads_report());
  if (comm_.size() > 1)
    say("sama: {} ranks, {} samples each per step; gradient all-reduce ({}) in {} bucket(s) of <= {} MB, "
        "meta strategy {}",
        comm_.size(), local_batch_, reducer_->backend(), reducer_->num_buckets(), deck_.parallel.bucket_mb,
        deck_.meta.strategy);

  GemmRecorder gemm_count;
  gemm_count.keep_calls(opt_.record_gemm_calls);
  if (opt_.count_kokkos) kokkos_counters::install();
  KokkosCounts counted = kokkos_counters::read();  // (all zero unless installed)
  // What Kokkos did since `counted`, added to `into` (with RunOptions::count_kokkos).
  const auto count_into = [&](KokkosCounts& into) {
    if (!opt_.count_kokkos) return;
    const KokkosCounts now = kokkos_counters::read();
    into += now - counted;
    counted = now;
  };
  Timer train_timer, window_timer, wall, since_checkpoint;
  const auto& ck = deck_.checkpoint;
  const bool checkpoints = !opt_.out_dir.empty();
  for (long step = start_step_; step < total_steps_; ++step) {
    if (step == opt_.untimed_steps && step > 0) {  // the timed part starts here
      gemm_count.reset();
      train_seconds_ = 0;
      train_timer.reset();
    }
    const double lr = optim::learning_rate(schedule_, deck_.optimizer.lr, step);
    const char* phase = "base step";
    const long done = step + 1;
    std::array<int, 4> control{};
    count_into(result_.kokkos_between_steps);
    ScopedRegion step_region("sama::step");
    try {
      if (step == deck_.debug.fail_step && comm_.rank() == deck_.debug.fail_rank)
        fail("failure injected by debug.fail_step/debug.fail_rank");
      epoch_ = step / static_cast<long>(sampler_.batches_per_epoch());
      base_ids_ = &sampler_.next();
      {
        ScopedRegion region("sama::gather");
        base_.load(data_.train, data_.norm, data_.labels.observed, base_ids_->data(), base_ids_->size());
      }
      double loss_sum = base_gradient();
      if (comm_.rank() == deck_.debug.nan_rank && step >= deck_.debug.nan_step &&
          step < deck_.debug.nan_step + deck_.debug.nan_count)
        loss_sum = std::numeric_limits<double>::quiet_NaN();
      // Every rank learns whether any rank saw a non-finite loss or gradient, and whether a stop or a
      // timed checkpoint is due (decided on rank 0's clock), in one small all-reduce.
      ScopedRegion control_region("sama::control");
      const bool bad = !std::isfinite(loss_sum) || !ops::all_finite<real>(grad_);
      const double budget_s = 60.0 * ck.wall_time_minutes;
      const int stop = stop_signal() != 0                 ? stop_signal()
                       : step == deck_.debug.preempt_step ? kStopDebug
                       : budget_s > 0 && comm_.rank() == 0 && wall.seconds() >= budget_s ? kStopBudget
                                                                                        : 0;
      const bool time_due = ck.every_minutes > 0 && comm_.rank() == 0 && since_checkpoint.seconds() >= 60.0 * ck.every_minutes;
      control = agree(bad, stop, time_due, launcher_gone());
      control_region.end();
      if (control[3]) {
        // mpirun (or orted) died, e.g. by kill -9: this rank is an orphan. Stop at once on every rank,
        // writing nothing (a resume or a new run may already own the directory).
        std::fprintf(stderr,
                     "sama: rank %d: the launcher (parent process %d) is gone: stopping at step %ld without "
                     "writing anything\n",
                     comm_.rank(), launcher_pid(), step);
        std::fflush(nullptr);
        std::_Exit(1);
      }
      if (control[0]) {
        ++nonfinite_total_;
        ++nonfinite_run_;
        say("step {}: non-finite loss or gradient on some rank: step skipped ({} in a row, {} in total)", step,
            nonfinite_run_, nonfinite_total_);
        if (nonfinite_run_ >= deck_.train.max_nonfinite)
          fail("{} consecutive steps with a non-finite loss or gradient (train.max_nonfinite = {}); stopping",
               nonfinite_run_, deck_.train.max_nonfinite);
      } else {
        nonfinite_run_ = 0;
        base_update(lr, loss_sum);
        if (meta_due(step)) {
          phase = "meta step";
          ScopedRegion region("sama::meta_step");
          const auto& meta_ids = meta_sampler_.next();
          {
            ScopedRegion gather("sama::meta_gather");
            meta_.load(data_.train, data_.norm, data_.train.labels, meta_ids.data(), meta_ids.size());
          }
          meta_step();
        }
      }
      if (deck_.parallel.check_replicas > 0 && done % deck_.parallel.check_replicas == 0) {
        phase = "replica check";
        ScopedRegion region("sama::replica_check");
        check_replicas(done);
      }
    } catch (const std::exception& e) {
      fail("step {} ({}): {}", step, phase, e.what());
    }
    step_region.end();
    if (opt_.count_kokkos) count_into(result_.kokkos_steps.emplace_back());
    const bool log_now = done % deck_.train.log_interval == 0 || done == total_steps_;
    const bool eval_now = done % eval_interval_ == 0 || done == total_steps_;
    if (log_now || eval_now) {
      train_seconds_ += train_timer.seconds();
      ScopedRegion region("sama::logging");
      log_and_evaluate(done, lr, log_now, eval_now, window_timer.seconds(), wall.seconds(), metrics);
      window_timer.reset();
      train_timer.reset();
    }
    // Checkpoints: on a stop request (then exit asking for a requeue), every N steps, every M minutes.
    const bool stop_now = control[1] != 0 && done < total_steps_;
    // A final checkpoint at completion: the state a later extension (more epochs) continues from.
    const bool final = done == total_steps_;
    if (checkpoints && (stop_now || control[2] || final || (ck.every_steps > 0 && done % ck.every_steps == 0))) {
      train_seconds_ += train_timer.seconds();
      ScopedRegion region("sama::checkpoint");
      write_checkpoint(done, stop_now ? "stop requested" : final ? "final" : "scheduled");
      since_checkpoint.reset();
      train_timer.reset();
    }
    if (stop_now) {
      result_.preempted = true;
      result_.steps = done;
      result_.stop_reason = control[1];
      const bool interrupt = control[1] == SIGINT;
      say("sama: stopped at step {} on request ({}{}); checkpoint committed{}; exit code {}{}",
          done, stop_reason_text(control[1]),
          stop_signal() == 0 && control[1] < kStopDebug ? fmt::format(" by another rank") : std::string(),
          stop_signal() != 0 ? fmt::format(" {:.2f} s after the request", seconds_since_stop_signal()) : std::string(),
          interrupt ? kExitInterrupted : kExitRequeue,
          interrupt ? " (interrupted; continue with --resume auto)" : " asks for a requeue");
      result_.stop_to_checkpoint_seconds = seconds_since_stop_signal();
      return result_;
    }
  }
  count_into(result_.kokkos_between_steps);
  RunResult& r = result_;
  r.steps = total_steps_;
  r.meta_steps = meta_steps_;
  r.nonfinite_steps = nonfinite_total_;
  r.hypergrad_diagnoses = run_diagnoses_;
  r.meta_weight_collapsed_at_step = collapsed_at_step_;
  if (run_diagnoses_ > 0) {
    r.mean_hypergrad_cosine = run_cosine_ / double(run_diagnoses_);
    r.mean_hypergrad_norm_ratio = run_ratio_ / double(run_diagnoses_);
  }
  r.comm_hidden_fraction = comm_.size() > 1 ? reducer_->hidden_fraction() : 0.0;
  r.comm_exposed_seconds = reducer_->stats().exposed_seconds;
  r.gemm_flops = gemm_count.flops();
  r.gemm_seconds = gemm_count.seconds();
  r.gemm_calls = gemm_count.calls();
  r.train_seconds = train_seconds_;
  const long timed = total_steps_ - std::max(start_step_, std::min(opt_.untimed_steps, total_steps_ - 1));
  r.samples_per_second = double(timed) * double(batch_size_) / std::max(train_seconds_, 1e-9);
  if (write && opt_.final_weights) write_sample_table((fs::path(opt_.out_dir) / "weights.h5").string());
  if (scores_ && !opt_.out_dir.empty()) write_scores((fs::path(opt_.out_dir) / "scores.h5").string());  // collective
  if (opt_.keep_parameters) {
    auto th = Kokkos::create_mirror_view_and_copy(HostSpace(), theta_);
    auto la = Kokkos::create_mirror_view_and_copy(HostSpace(), lambda_);
    r.theta.assign(host_data(th), host_data(th) + th.extent(0));
    r.lambda.assign(host_data(la), host_data(la) + la.extent(0));
  }
  r.peak_rss_mb = peak_rss_mb();
  return r;
}

/// Bytes of memory available to this process: MemAvailable, and the cgroup limit less its usage when
/// there is one (cgroup v2, else v1).
double available_bytes() {
  auto read_number = [](const char* path) -> double {
    std::FILE* f = std::fopen(path, "r");
    if (!f) return -1;
    char buf[64] = {};
    const bool ok = std::fgets(buf, sizeof(buf), f) != nullptr;
    std::fclose(f);
    if (!ok || std::string(buf).rfind("max", 0) == 0) return -1;
    return std::strtod(buf, nullptr);
  };
  double avail = -1;
  if (std::FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    while (std::fgets(line, sizeof(line), f))
      if (std::string(line).rfind("MemAvailable:", 0) == 0) avail = 1024.0 * std::strtod(line + 13, nullptr);
    std::fclose(f);
  }
  double limit = read_number("/sys/fs/cgroup/memory.max"), used = read_number("/sys/fs/cgroup/memory.current");
  if (limit < 0) {
    limit = read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    used = read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes");
    if (limit > 1e18) limit = -1;  // v1's "no limit"
  }
  if (limit > 0) {
    const double room = limit - std::max(used, 0.0);
    avail = avail < 0 ? room : std::min(avail, room);
  }
  return avail;
}

/// Estimates the run's peak memory per rank before anything large is allocated, prints it, and
/// refuses a run that does not fit in the memory available to the rank (that of the node shared by
/// the ranks on it). SAMA_MEMORY_AVAILABLE_MB overrides the available memory (tests).
double check_memory(const Deck& deck, const Data& data, const RunOptions& options, const comm::Communicator& comm) {
  const auto widths = widths_of(deck, data.train.features(), static_cast<std::size_t>(data.train.num_classes));
  double params = 0, units = 0;
  for (std::size_t i = 0; i + 1 < widths.size(); ++i) {
    params += double(widths[i]) * double(widths[i + 1]) + double(widths[i + 1]);
    units += double(widths[i + 1]);
  }
  const double f = sizeof(float);
  const std::string& m = deck.meta.method;
  const double opt_vectors = deck.optimizer.cfg.name == "sgd" ? 2 : 3;  // moments (+ the stored gradient D)
  // θ, its gradient, the optimizer's state; the meta step's v, w, θ backup and probe gradient; solver
  // vectors (neumann, cg); the unroll history (K parameter vectors and their batches).
  double vectors = 2 + opt_vectors + (m == "none" ? 0 : 4) + (m == "neumann" || m == "cg" ? 4 : 0);
  const double ws = double(std::max({deck.train.batch_size, deck.meta.batch_size, deck.train.eval_batch}));
  double history = 0;
  if (m == "unrolled") history = double(deck.meta.k) * (params * f + ws * double(data.train.features()) * f);
  const double parameters = vectors * params * f;
  // Activations, pre-activations, their gradients and tangents, per layer, for the largest batch; the
  // GEMM workspaces and the batch buffers.
  const double activations = 6.0 * ws * (units + double(widths[0])) * f + 3.0 * ws * double(widths[0]) * f;
  const double scores = deck.scores.enabled ? 12.0 * 8.0 * double(data.train.n) : 0.0;
  const double loaded = double(data.train.u8.size() + data.test.u8.size()) +
                        f * double(data.train.f32.size() + data.test.f32.size()) +
                        8.0 * double(data.train.n + data.test.n);
  // What the process holds already (libraries, MPI, Kokkos) and does not give back.
  double baseline = 0;
  if (std::FILE* sf = std::fopen("/proc/self/statm", "r")) {
    long pages = 0, resident = 0;
    if (std::fscanf(sf, "%ld %ld", &pages, &resident) == 2) baseline = double(resident) * double(::sysconf(_SC_PAGESIZE));
    std::fclose(sf);
  }
  baseline = std::max(0.0, baseline - loaded);
  const double total = parameters + history + activations + scores + loaded + baseline;
  int local = options.ranks_per_node;
  if (local <= 0) {
    MPI_Comm node;
    MPI_Comm_split_type(comm.get(), MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
  }
  double avail = available_bytes();
  if (const char* o = std::getenv("SAMA_MEMORY_AVAILABLE_MB")) avail = 1e6 * std::strtod(o, nullptr);
  const double per_rank = avail > 0 ? avail / std::max(local, 1) : -1;
  const auto mb = [](double b) { return b / 1e6; };
  const std::string breakdown =
      fmt::format("parameters and optimizer/meta state {:.0f} MB ({:.0f} parameters x {:.0f} vectors), unroll "
                  "history {:.0f} MB, activations and workspaces {:.0f} MB, score sums {:.0f} MB, data {:.0f} MB, process "
                  "{:.0f} MB",
                  mb(parameters), params, vectors, mb(history), mb(activations), mb(scores), mb(loaded), mb(baseline));
  if (comm.rank() == 0 && options.log)
    *options.log << fmt::format("sama: memory estimate {:.0f} MB per rank ({}); {} available per rank\n", mb(total),
                                breakdown,
                                per_rank > 0 ? fmt::format("{:.0f} MB", mb(per_rank)) : std::string("unknown"));
  if (per_rank > 0 && total > per_rank)
    fail("{}: this run needs about {:.0f} MB per rank ({}), more than the {:.0f} MB available to each of the {} "
         "rank(s) on this node (MemAvailable or the cgroup memory limit, shared by the ranks): use a smaller model "
         "(model.hidden) or batch, or fewer ranks per node",
         deck.file, mb(total), breakdown, mb(per_rank), local);
  return mb(total);
}

}  // namespace

StepCounts per_step_counts(const RunResult& r, long first) {
  StepCounts m;
  KokkosCounts sum;
  for (std::size_t i = static_cast<std::size_t>(std::max(first, 0L)); i < r.kokkos_steps.size(); ++i) {
    const KokkosCounts& c = r.kokkos_steps[i];
    sum += c;
    m.max_allocations = std::max(m.max_allocations, c.allocations());
    ++m.steps;
  }
  if (m.steps == 0) return m;
  const double n = double(m.steps);
  m.host_allocations = double(sum.host_allocations) / n;
  m.device_allocations = double(sum.device_allocations) / n;
  m.copies_host_to_device = double(sum.copies_host_to_device) / n;
  m.copies_device_to_host = double(sum.copies_device_to_host) / n;
  m.copies_same_space = double(sum.copies_host_to_host + sum.copies_device_to_device) / n;
  m.copies_aliased = double(sum.copies_aliased) / n;
  m.fills = double(sum.fills) / n;
  m.kernels = double(sum.kernels()) / n;
  m.regions = double(sum.regions) / n;
  return m;
}

RunResult train(const Deck& deck, const RunOptions& options, const comm::Communicator& comm) {
  namespace fs = std::filesystem;
  // Everything that can be rejected is checked before the run directory is touched.
  if (deck.train.batch_size % comm.size() != 0)
    fail("{}: train.batch_size = {} does not divide over {} ranks", deck.file, deck.train.batch_size, comm.size());
  if (deck.meta.batch_size % comm.size() != 0)
    fail("{}: meta.batch_size = {} does not divide over {} ranks", deck.file, deck.meta.batch_size, comm.size());
  Data data = load_data(deck);
  if (data.kept.size() < static_cast<std::size_t>(deck.train.batch_size))
    fail("{}: train.batch_size = {} exceeds the {} training samples{}", deck.file, deck.train.batch_size,
         data.kept.size(), deck.data.keep_mask.empty() ? " left after the meta set" : " the keep mask keeps");
  if (data.split.meta_ids.size() < static_cast<std::size_t>(deck.meta.batch_size))
    fail("{}: meta.batch_size = {} exceeds the meta set of {} samples", deck.file, deck.meta.batch_size,
         data.split.meta_ids.size());
  const auto train_samples = static_cast<long>(data.kept.size());
  const std::string train_checksum = data.train.checksum, test_checksum = data.test.checksum;
  const double memory_mb = check_memory(deck, data, options, comm);  // refuses a run that cannot fit, before allocating it
  const bool want_resume = options.resume || options.resume_if_present;
  // The run directory: checked (a fresh run never silently replaces a completed or interrupted run),
  // created and locked by rank 0 before any rank reads a checkpoint from it; the lock is held until
  // this function returns (or the process dies).
  io::RunDirLock lock;
  std::string extended_summary;  // a completed run being extended: where its summary.json was moved
  if (!options.out_dir.empty()) {
    if (comm.rank() == 0) {
      io::check_run_dir(options.out_dir, {deck.file, deck.data.train_file, deck.data.test_file, deck.data.keep_mask},
                        want_resume, options.overwrite);
      lock = io::RunDirLock(options.out_dir);
      for (const auto& f : io::remove_stale_temporaries(options.out_dir))
        if (options.log) *options.log << "sama: removed the leftover of a failed or killed write: " << f << "\n";
    }
    comm.barrier();  // the directory is ours before any rank reads its checkpoints
  }
  Trainer trainer(deck, options, comm, std::move(data));
  bool resuming = false;
  if (want_resume) {
    if (options.out_dir.empty()) fail("resuming needs the run directory (--out)");
    const bool completed = fs::exists(fs::path(options.out_dir) / "summary.json");
    // Every rank reads the checkpoint itself (read-only) and takes the same decision.
    const auto found = io::find_checkpoint(io::checkpoint_dir(options.out_dir));
    if (completed && found) {
      // Extending a completed run starts from its final checkpoint, never from an earlier one.
      std::ifstream in(fs::path(options.out_dir) / "summary.json");
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const auto at = text.find("\"steps\": ");
      const long steps = at == std::string::npos ? -1 : std::atol(text.c_str() + at + 9);
      if (steps != found->data.step)
        fail("run directory '{}' holds a completed run of {} steps whose newest good checkpoint is at step {}: it "
             "has no final checkpoint (written by an older sama, or damaged), so it cannot be extended",
             options.out_dir, steps, found->data.step);
    }
    if (completed && (!found || found->data.step >= trainer.total_steps()))
      fail("run directory '{}' holds a completed run (summary.json){}: nothing to resume. To train it longer, "
           "resume it with a larger train.epochs or train.steps (--set train.steps=N)",
           options.out_dir,
           found ? fmt::format(" of {} steps; this deck asks for {}", found->data.step, trainer.total_steps())
                 : std::string(" without a final checkpoint"));
    if (found) {
      for (const auto& problem : found->rejected)
        if (comm.rank() == 0 && options.log) *options.log << "sama: skipping damaged checkpoint: " << problem << "\n";
      for (const auto& note : found->notes)
        if (comm.rank() == 0 && options.log) *options.log << "sama: note: " << note << "\n";
      const std::string why = resume_incompatibility(found->data.deck, deck);
      if (!why.empty())
        fail("checkpoint '{}' does not match deck '{}': {}", found->data.source, deck.file, why);
      if (found->data.step > trainer.total_steps())
        fail("checkpoint '{}' is at step {}, past the {} steps this deck asks for: raise train.epochs/train.steps",
             found->data.source, found->data.step, trainer.total_steps());
      trainer.restore(found->data);
      resuming = true;
      if (comm.rank() == 0 && options.log)
        *options.log << fmt::format("sama: resuming from {} (step {}, written by {} rank(s)){}\n", found->data.source,
                                    found->data.step, found->data.ranks,
                                    completed ? fmt::format("; extending the completed run to {} steps",
                                                            trainer.total_steps())
                                              : std::string());
      const auto threads_then = found->data.ints.find("threads");  // absent in older checkpoints
      const std::vector<std::int64_t> threads_now = thread_layout();
      if (threads_then != found->data.ints.end() && threads_then->second.size() == 3 &&
          (threads_then->second[1] != threads_now[1] || threads_then->second[2] != threads_now[2]) &&
          comm.rank() == 0 && options.log)
        *options.log << fmt::format(
            "sama: note: the checkpoint was written with {} BLAS thread(s) and Kokkos concurrency {} per rank, this "
            "run has {} and {}: it continues correctly, but not to the bit of a run without the change (threaded "
            "sums run in another order)\n",
            threads_then->second[1], threads_then->second[2], threads_now[1], threads_now[2]);
      if (completed && comm.rank() == 0) {
        // The run is incomplete again until the extension ends: its summary is kept aside (atomically
        // renamed) and replaced by the new one at the end.
        extended_summary =
            (fs::path(options.out_dir) / fmt::format("summary.step_{}.json", found->data.step)).string();
        io::commit_file((fs::path(options.out_dir) / "summary.json").string(), extended_summary);
      }
    } else if (options.resume) {
      fail("no checkpoint to resume from in '{}'", io::checkpoint_dir(options.out_dir));
    }
  }
  if (!options.out_dir.empty() && comm.rank() == 0) {
    io::prepare_run_dir(options.out_dir, resuming);
    io::write_file_atomic((fs::path(options.out_dir) / "deck.resolved.toml").string(), to_toml(deck));
  }
  comm.barrier();  // the run directory exists before any rank writes a checkpoint
  RunResult r = trainer.run();
  r.memory_estimate_mb = memory_mb;
  if (r.preempted) return r;  // a checkpoint, no summary: the run is not complete
  if (!options.out_dir.empty() && comm.rank() == 0) {
    io::JsonObject j;
    j.set("final_test_accuracy", r.final_test_accuracy);
    j.set("best_test_accuracy", r.best_test_accuracy);
    j.set("final_test_loss", r.final_test_loss);
    j.set("final_train_loss", r.final_train_loss);
    j.set("steps", r.steps);
    j.set("meta_steps", r.meta_steps);
    j.set("ranks", static_cast<long>(r.ranks));
    j.set("method", r.method);
    j.set("samples_per_second", r.samples_per_second);
    j.set("train_seconds", r.train_seconds);
    j.set("peak_rss_mb", r.peak_rss_mb);
    j.set("mean_weight_clean", r.mean_weight_clean);
    j.set("mean_weight_noisy", r.mean_weight_noisy);
    if (r.method != "none") {
      j.set("weight_net", deck.meta.weight_net);
      if (r.meta_weight_collapsed_at_step >= 0) j.set("meta_weight_collapsed_at_step", r.meta_weight_collapsed_at_step);
      else j.set_null("meta_weight_collapsed_at_step");
    }
    j.set("seed", deck.train.seed);
    j.set("blas_core", blas::running_core());
    j.set("blas_core_detail", blas::blas_core_report());
    j.set("threads_per_rank", static_cast<long>(threads::applied().threads_per_rank));
    j.set("threads_source", threads::applied().source);
    j.set("kokkos_concurrency", static_cast<long>(ExecSpace().concurrency()));
    j.set("blas_threads", static_cast<long>(blas_threads()));
    j.set("comm_hidden_fraction", r.comm_hidden_fraction);
    j.set("comm_exposed_seconds", r.comm_exposed_seconds);
    j.set("nonfinite_steps", r.nonfinite_steps);
    if (r.hypergrad_diagnoses > 0) {
      j.set("hypergrad_diagnoses", r.hypergrad_diagnoses);
      j.set("mean_hypergrad_cosine", r.mean_hypergrad_cosine);
      j.set("mean_hypergrad_norm_ratio", r.mean_hypergrad_norm_ratio);
    }
    j.set("resumed_from_step", r.resumed_from);
    j.set("deck", deck.file);
    j.set("train_samples", train_samples);
    j.set("keep_mask", deck.data.keep_mask);
    // Provenance of the data read (FNV-1a 64 of the files' bytes; empty for synthetic data).
    j.set("train_data_checksum", train_checksum);
    j.set("test_data_checksum", test_checksum);
    j.set("memory_estimate_mb", r.memory_estimate_mb);
    if (!extended_summary.empty()) j.set("extended_from", fs::path(extended_summary).filename().string());
    io::write_file_atomic((fs::path(options.out_dir) / "summary.json").string(), j.str());
  }
  return r;
}

}  // namespace sama::app

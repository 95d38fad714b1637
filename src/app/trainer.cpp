// The training loop. It reads like the algorithm (DESIGN.md §2): every step a base step on a training
// batch weighted by the Meta-Weight-Net; every `meta.interval` steps a SAMA meta step:
//
//   v  = ∂L_meta/∂θ                     (meta batch, clean labels)
//   w  = D ⊙ v                          (the base optimizer's adaptation; D = I for finite_difference)
//   δ_i = (ℓ_i(θ+εw) − ℓ_i(θ−εw)) / 2ε  (same base batch, ε = α/‖w‖, θ restored bitwise)
//   ∇λ = ∂L_meta/∂λ − ∂/∂λ (1/B) Σ δ_i w_i(λ)      (for Meta-Weight-Net, ∂L_meta/∂λ = 0)
//   λ ← meta optimizer step (Adam)
#include "sama/app/trainer.hpp"

#include "sama/comm/gradient_reducer.hpp"
#include "sama/core/error.hpp"
#include "sama/core/gemm.hpp"
#include "sama/core/timer.hpp"
#include "sama/core/vector_ops.hpp"
#include "sama/data/dataset.hpp"
#include "sama/data/noise.hpp"
#include "sama/data/sampler.hpp"
#include "sama/io/run_files.hpp"
#include "sama/meta/hypergradient.hpp"
#include "sama/meta/meta_weight_net.hpp"
#include "sama/nn/classifier.hpp"
#include "sama/optim/optimizer.hpp"
#include "sama/optim/schedule.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <ostream>

namespace sama::app {
namespace {

using real = float;
using HostMat = Kokkos::View<real**, Kokkos::LayoutRight, HostSpace>;
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
    data::gather(d, norm, ids, count, x_host.data());
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

struct Data {
  data::Dataset train, test;
  data::MetaSplit split;
  data::NoisyLabels labels;
  data::Normalization norm;
};

Data load_data(const Deck& deck) {
  Data d;
  const auto& c = deck.data;
  const auto seed = static_cast<std::uint64_t>(deck.train.seed);
  if (c.source == "fashion_mnist") {
    d.train = data::read_fashion_mnist(c.path, true);
    d.test = data::read_fashion_mnist(c.path, false);
  } else if (c.source == "hdf5") {
    d.train = data::read_hdf5(c.train_file);
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
  const int classes = std::max(d.train.num_classes, d.test.num_classes);
  d.train.num_classes = d.test.num_classes = classes;
  d.split = data::split_meta(d.train.labels, classes, static_cast<std::size_t>(c.meta_size), seed);
  d.labels = data::apply_label_noise(d.train.labels, classes, d.split.train_ids, data::parse_noise_type(c.noise_type),
                                     c.noise_rate, seed);
  d.norm = data::compute_normalization(d.train, d.split.train_ids);
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
        sampler_(data_.split.train_ids, batch_size_, seed(), static_cast<std::uint64_t>(Stream::sampler), comm.rank(),
                 comm.size()),
        meta_sampler_(data_.split.meta_ids, meta_batch_size_, seed(), static_cast<std::uint64_t>(Stream::meta_sampler),
                      comm.rank(), comm.size()),
        model_(widths_of(deck, data_.train.features(), static_cast<std::size_t>(data_.train.num_classes)),
               nn::parse_activation(deck.model.activation), workspace_),
        theta_(make_vec<real>("sama::theta", model_.num_params())),
        grad_(make_vec<real>("sama::grad", model_.num_params())),
        base_opt_(optim::make_optimizer<real>(deck.optimizer.cfg, model_.num_params())),
        mwn_(static_cast<std::size_t>(deck.meta.hidden), deck.meta.normalize, workspace_),
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
    local_meta_batch_ = meta_sampler_.local_batch();
    sum_ = [this](double* x, int n) { comm_.allreduce_sum(x, n); };
    // Buckets of the flat gradient in the order backward completes the layers (last layer first).
    std::vector<std::pair<std::size_t, std::size_t>> layers;
    for (std::size_t i = model_.mlp().num_layers(); i-- > 0;) {
      const std::size_t np = model_.mlp().layer(i).num_params();
      if (np > 0) layers.emplace_back(model_.mlp().param_offset(i), np);
    }
    reducer_ = deck.parallel.backend == "nccl"
                   ? comm::make_nccl_reducer(comm_, grad_.data(), grad_.extent(0), layers, deck.parallel.bucket_mb * 1e6)
                   : comm::make_mpi_reducer(comm_, grad_.data(), grad_.extent(0), layers, deck.parallel.bucket_mb * 1e6);
    total_steps_ = deck.train.steps > 0 ? deck.train.steps
                                        : deck.train.epochs * static_cast<long>(sampler_.batches_per_epoch());
    schedule_ = deck.schedule;
    schedule_.total_steps = total_steps_;
    eval_interval_ = deck.train.eval_interval > 0 ? deck.train.eval_interval
                                                  : static_cast<long>(sampler_.batches_per_epoch());
    Rng init_rng(seed(), Stream::init);
    model_.mlp().init(theta_, init_rng);
    Rng meta_rng(seed(), Stream::meta_init);
    mwn_.init(lambda_, meta_rng);
    weights_host_ = Kokkos::create_mirror_view(weights_);
    losses_host_ = Kokkos::create_mirror_view(losses_);
  }

  RunResult run();

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
  void base_step(double lr);
  void meta_step();
  void evaluate(double& accuracy, double& loss);
  void accumulate_weight_stats();
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
  std::size_t local_batch_ = 0, local_meta_batch_ = 0;                    // this rank's shares
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

  Batch base_, meta_;
  const std::vector<std::int64_t>* base_ids_ = nullptr;  // ids of the current base batch
  Vec<real> losses_, weights_, coef_, delta_;
  Vec<real>::HostMirror weights_host_, losses_host_;

  // Statistics of the current logging window.
  double window_base_loss_ = 0, window_meta_loss_ = 0, window_eps_ = 0;
  long window_steps_ = 0, window_meta_steps_ = 0;
  double w_clean_sum_ = 0, w_noisy_sum_ = 0;
  long w_clean_n_ = 0, w_noisy_n_ = 0;
  long meta_steps_ = 0;
};

void Trainer::backward_allreduce(VecU<const real> coef, VecU<const int> y) {
  reducer_->begin();
  model_.backward(theta_, coef, y, grad_, [this](std::size_t off, std::size_t n) { reducer_->ready(off, n); });
  reducer_->finish();
}

void Trainer::base_step(double lr) {
  const std::size_t b = base_.size;
  VecU<real> losses = slice<real>(losses_, 0, b), weights = slice<real>(weights_, 0, b), coef = slice<real>(coef_, 0, b);
  model_.losses(theta_, base_.xs(), base_.ys(), losses);  // ℓ_i(θ)
  if (method_ == meta::Method::none) ops::fill<real>(weights, 1);
  else mwn_.forward(lambda_, losses, weights, sum_);      // w_i = MWN_λ(ℓ_i), input detached
  ops::scale<real>(weights, static_cast<real>(1.0 / static_cast<double>(batch_size_)), coef);  // L = (1/B) Σ w_i ℓ_i
  backward_allreduce(coef, base_.ys());                   // g = ∂L_base/∂θ, summed over ranks
  const double loss_sum = ops::sum<real>(losses);
  if (!ops::all_finite<real>(grad_)) fail("non-finite base gradient");
  base_opt_->step(theta_, grad_, lr);                     // θ ← θ − u(g); keeps what D needs
  window_base_loss_ += loss_sum;
  ++window_steps_;
  accumulate_weight_stats();
}

void Trainer::meta_step() {
  const std::size_t mb = meta_.size, b = base_.size;
  const bool global = deck_.meta.strategy == "global";
  // v = ∂L_meta/∂θ on a clean meta batch (the gradient buffer is free again after the base step):
  // "local" keeps each rank's own v (the mean over its meta shard); "global" sums it over ranks.
  VecU<real> meta_losses = slice<real>(losses_, 0, mb), coef = slice<real>(coef_, 0, mb);
  model_.losses(theta_, meta_.xs(), meta_.ys(), meta_losses);
  const double meta_loss_sum = ops::sum<real>(meta_losses);
  VecU<real> v = grad_;
  ops::fill<real>(coef, static_cast<real>(1.0 / static_cast<double>(global ? meta_batch_size_ : mb)));
  if (global) {
    backward_allreduce(coef, meta_.ys());
  } else {
    model_.backward(theta_, coef, meta_.ys(), v);
  }
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
  if (!ops::all_finite<real>(lambda_grad_)) fail("non-finite hypergradient");
  meta_opt_->step(lambda_, lambda_grad_, deck_.meta.lr);
  window_meta_loss_ += meta_loss_sum;
  window_eps_ += probe.epsilon;
  ++window_meta_steps_;
  ++meta_steps_;
}

void Trainer::check_replicas(long step) {
  // FNV-1a over the bits of θ and λ; every rank must hold the same value.
  auto hash = [](const Vec<real>& v, std::uint64_t h) {
    auto host = Kokkos::create_mirror_view_and_copy(HostSpace(), v);
    const auto* bytes = reinterpret_cast<const unsigned char*>(host.data());
    for (std::size_t i = 0; i < host.extent(0) * sizeof(real); ++i) h = (h ^ bytes[i]) * 0x100000001b3ULL;
    return h;
  };
  const std::uint64_t h = hash(lambda_, hash(theta_, 0xcbf29ce484222325ULL));
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
  const auto& ids = *base_ids_;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (data_.labels.is_noisy[static_cast<std::size_t>(ids[i])]) {
      w_noisy_sum_ += weights_host_(i);
      ++w_noisy_n_;
    } else {
      w_clean_sum_ += weights_host_(i);
      ++w_clean_n_;
    }
  }
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

void Trainer::write_sample_table(const std::string& path) {
  const auto& ids_all = data_.split.train_ids;
  io::SampleTable t;
  t.sample_id = ids_all;
  t.meta_weight.resize(ids_all.size());
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
    for (std::size_t i = 0; i < count; ++i) {
      t.loss[start + i] = losses_host_(i);
      t.meta_weight[start + i] = weights_host_(i);
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
                          {"meta_weight", "sigmoid output of the Meta-Weight-Net at the end of training, "
                                          "un-normalised (1 for method none)"}});
}

RunResult Trainer::run() {
  RunResult r;
  r.method = deck_.meta.method;
  r.ranks = comm_.size();
  const bool write = !opt_.out_dir.empty() && comm_.rank() == 0;  // rank 0 writes the shared files
  namespace fs = std::filesystem;
  io::MetricsWriter metrics;
  if (write)
    metrics = io::MetricsWriter((fs::path(opt_.out_dir) / "metrics.csv").string(),
                                {"step", "epoch", "lr", "base_loss", "meta_loss", "weight_clean", "weight_noisy",
                                 "epsilon", "samples_per_s", "comm_hidden", "test_accuracy", "test_loss", "elapsed_s"});
  say("sama: {} on {} ({} train, {} meta, {} test samples, {} features, {} classes), noise {} {:.2f}",
      deck_.meta.method, data_.train.source, data_.split.train_ids.size(), data_.split.meta_ids.size(),
      data_.test.n, data_.train.features(), data_.train.num_classes, deck_.data.noise_type, deck_.data.noise_rate);
  say("sama: model {} ({} parameters), Meta-Weight-Net {} parameters, {} steps of batch {} ({} per epoch)",
      fmt::join(model_.mlp().widths(), "-"), model_.num_params(), mwn_.num_params(), total_steps_, batch_size_,
      sampler_.batches_per_epoch());
  if (comm_.size() > 1)
    say("sama: {} ranks, {} samples each per step; gradient all-reduce ({}) in {} bucket(s) of <= {} MB, "
        "meta strategy {}",
        comm_.size(), local_batch_, reducer_->backend(), reducer_->num_buckets(), deck_.parallel.bucket_mb,
        deck_.meta.strategy);

  GemmRecorder gemm_count;
  gemm_count.keep_calls(opt_.record_gemm_calls);
  Timer train_timer, window_timer, wall;
  double train_seconds = 0;
  bool first_window = true;
  for (long step = 0; step < total_steps_; ++step) {
    if (step == opt_.untimed_steps && step > 0) {  // the timed part starts here
      gemm_count.reset();
      train_seconds = 0;
      train_timer.reset();
    }
    const double lr = optim::learning_rate(schedule_, deck_.optimizer.lr, step);
    const char* phase = "base step";
    try {
      if (step == deck_.debug.fail_step && comm_.rank() == deck_.debug.fail_rank)
        fail("failure injected by debug.fail_step/debug.fail_rank");
      base_ids_ = &sampler_.next();
      base_.load(data_.train, data_.norm, data_.labels.observed, base_ids_->data(), base_ids_->size());
      base_step(lr);
      if (meta_due(step)) {
        phase = "meta step";
        const auto& meta_ids = meta_sampler_.next();
        meta_.load(data_.train, data_.norm, data_.train.labels, meta_ids.data(), meta_ids.size());
        meta_step();
      }
      if (deck_.parallel.check_replicas > 0 && (step + 1) % deck_.parallel.check_replicas == 0) {
        phase = "replica check";
        check_replicas(step + 1);
      }
    } catch (const std::exception& e) {
      fail("step {} ({}): {}", step, phase, e.what());
    }
    const long done = step + 1;
    const bool log_now = done % deck_.train.log_interval == 0 || done == total_steps_;
    const bool eval_now = done % eval_interval_ == 0 || done == total_steps_;
    if (!log_now && !eval_now) continue;

    train_seconds += train_timer.seconds();
    std::map<std::string, double> row{{"step", double(done)}, {"epoch", double(done) / sampler_.batches_per_epoch()},
                                      {"lr", lr}, {"elapsed_s", wall.seconds()}};
    if (log_now) {
      const double window_s = window_timer.seconds();
      const double sps = double(window_steps_ * batch_size_) / std::max(window_s, 1e-9);
      // Window statistics summed over ranks (each rank saw its shard of every batch).
      double w[7] = {window_base_loss_, window_meta_loss_, window_eps_, w_clean_sum_, double(w_clean_n_),
                     w_noisy_sum_, double(w_noisy_n_)};
      comm_.allreduce_sum(w, 7);
      const double base_loss = w[0] / (double(std::max<long>(window_steps_, 1)) * double(batch_size_));
      const double meta_loss = window_meta_steps_ ? w[1] / (double(window_meta_steps_) * double(meta_batch_size_)) : NAN;
      const double eps = window_meta_steps_ ? w[2] / (double(window_meta_steps_) * comm_.size()) : NAN;
      const double wc = w[4] > 0 ? w[3] / w[4] : NAN, wn = w[6] > 0 ? w[5] / w[6] : NAN;
      const double eta = double(total_steps_ - done) * batch_size_ / std::max(sps, 1e-9);
      row.insert({{"base_loss", base_loss}, {"meta_loss", meta_loss}, {"weight_clean", wc}, {"weight_noisy", wn},
                  {"epsilon", eps}, {"samples_per_s", sps}});
      std::string comm_note;
      if (comm_.size() > 1) {
        row["comm_hidden"] = reducer_->hidden_fraction();
        comm_note = fmt::format(" | comm hidden {:.0f}%", 100 * reducer_->hidden_fraction());
      }
      say("step {}/{} ({:.0f}%) epoch {:.2f} | lr {:.3g} | base loss {:.4f} | meta loss {:.4f} | weight clean {:.3f} "
          "noisy {:.3f} | {:.0f} samples/s{} | ETA {}",
          done, total_steps_, 100.0 * done / total_steps_, row["epoch"], lr, base_loss, meta_loss, wc, wn, sps,
          comm_note, format_duration(eta));
      if (first_window) r.first_train_loss = base_loss;
      first_window = false;
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
      evaluate(acc, loss);
      r.final_test_accuracy = acc;
      r.final_test_loss = loss;
      r.best_test_accuracy = std::max(r.best_test_accuracy, acc);
      row["test_accuracy"] = acc;
      row["test_loss"] = loss;
      say("eval at step {} epoch {:.2f}: test accuracy {:.4f} (best {:.4f}), test loss {:.4f}", done, row["epoch"], acc,
          r.best_test_accuracy, loss);
    }
    if (write) metrics.row(row);
    window_timer.reset();
    train_timer.reset();
  }
  r.steps = total_steps_;
  r.meta_steps = meta_steps_;
  r.comm_hidden_fraction = comm_.size() > 1 ? reducer_->hidden_fraction() : 0.0;
  r.comm_exposed_seconds = reducer_->stats().exposed_seconds;
  r.gemm_flops = gemm_count.flops();
  r.gemm_calls = gemm_count.calls();
  r.train_seconds = train_seconds;
  const long timed = total_steps_ - std::min(opt_.untimed_steps, total_steps_ - 1);
  r.samples_per_second = double(timed) * double(batch_size_) / std::max(train_seconds, 1e-9);
  if (write && opt_.final_weights) write_sample_table((fs::path(opt_.out_dir) / "weights.h5").string());
  if (opt_.keep_parameters) {
    auto th = Kokkos::create_mirror_view_and_copy(HostSpace(), theta_);
    auto la = Kokkos::create_mirror_view_and_copy(HostSpace(), lambda_);
    r.theta.assign(th.data(), th.data() + th.extent(0));
    r.lambda.assign(la.data(), la.data() + la.extent(0));
  }
  r.peak_rss_mb = peak_rss_mb();
  return r;
}

}  // namespace

RunResult train(const Deck& deck, const RunOptions& options, const comm::Communicator& comm) {
  namespace fs = std::filesystem;
  // Everything that can be rejected is checked before the run directory is touched.
  if (deck.train.batch_size % comm.size() != 0)
    fail("{}: train.batch_size = {} does not divide over {} ranks", deck.file, deck.train.batch_size, comm.size());
  if (deck.meta.batch_size % comm.size() != 0)
    fail("{}: meta.batch_size = {} does not divide over {} ranks", deck.file, deck.meta.batch_size, comm.size());
  Data data = load_data(deck);
  if (data.split.train_ids.size() < static_cast<std::size_t>(deck.train.batch_size))
    fail("{}: train.batch_size = {} exceeds the {} training samples left after the meta set", deck.file,
         deck.train.batch_size, data.split.train_ids.size());
  if (data.split.meta_ids.size() < static_cast<std::size_t>(deck.meta.batch_size))
    fail("{}: meta.batch_size = {} exceeds the meta set of {} samples", deck.file, deck.meta.batch_size,
         data.split.meta_ids.size());
  Trainer trainer(deck, options, comm, std::move(data));
  if (!options.out_dir.empty() && comm.rank() == 0) {
    io::prepare_run_dir(options.out_dir, {deck.file, deck.data.train_file, deck.data.test_file});
    io::write_file_atomic((fs::path(options.out_dir) / "deck.resolved.toml").string(), to_toml(deck));
  }
  RunResult r = trainer.run();
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
    j.set("seed", deck.train.seed);
    j.set("comm_hidden_fraction", r.comm_hidden_fraction);
    j.set("comm_exposed_seconds", r.comm_exposed_seconds);
    j.set("deck", deck.file);
    io::write_file_atomic((fs::path(options.out_dir) / "summary.json").string(), j.str());
  }
  return r;
}

}  // namespace sama::app

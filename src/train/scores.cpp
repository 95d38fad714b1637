// Per-sample scores: the windows of scores.h5 set up, each accepted base batch's losses, EL2N,
// correctness, gradient norms and meta weights added, and scores.h5 written at the end; and the
// sample table (weights.h5): every training sample's loss and weight under the final θ and λ.
#include "sama/train/trainer.hpp"

#include "sama/core/error.hpp"
#include "sama/core/vector_ops.hpp"
#include "sama/io/scores_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace sama::training {

using app::SampleScores;

void Trainer::init_scores() {
  const auto& sc = deck_.scores;
  SampleScores::Windows w;
  const long bpe = static_cast<long>(state_.sampler.batches_per_epoch());
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
    mwn_.log_weight_envelope(state_.lambda, slice<real>(envelope_, 0, b));
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
  const std::string grand_how =
      model_.net().num_buffers() == 0
          ? "mean GraNd: the exact per-sample gradient norm ||d loss_i / d theta||_2 over all parameters (every "
            "layer's weights and biases) at each visit in the window"
          : "mean GraNd: the norm over all parameters of sample i's own term of the batch gradient (every layer's "
            "weights and biases; exact per-sample products for convolutions, linear and batch norm layers), at each "
            "visit in the window. Batch norm normalises with the batch's statistics, which couple the samples: each "
            "layer's term for sample i uses the upstream gradient of the whole batch's loss, so this is sample i's "
            "share of the batch gradient, not the gradient of its loss alone";
  column("grand", blk.mean[SampleScores::grand], grand_how, w.early_first, w.early_last);
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
    model_.losses(state_.theta, meta_.xs(), meta_.ys(), losses, nn::Mode::eval);  // each sample's own loss
    if (method_ == meta::Method::none) ops::fill<real>(w, 1);
    else mwn_.scores(state_.lambda, losses, w);
    Kokkos::deep_copy(losses_host_, losses_);
    Kokkos::deep_copy(weights_host_, weights_);
    if (method_ != meta::Method::none) {
      const auto first = std::make_pair(std::size_t(0), count);
      Kokkos::deep_copy(Kokkos::subview(log_weight_host, first), mwn_.last_log_weights());
      VecU<real> env = slice<real>(delta_, 0, count);  // the probe's δ buffer is free once training ended
      mwn_.log_weight_envelope(state_.lambda, env);
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

}  // namespace sama::training

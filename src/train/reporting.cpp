// Reporting: the run's header lines, the progress lines and metrics.csv at each logging window (with
// the weight net's health and its collapse detector), evaluation on the test set, and the results at
// the end with the final files.
#include "sama/train/trainer.hpp"

#include "sama/app/commands.hpp"
#include "sama/core/blas_core.hpp"
#include "sama/core/error.hpp"
#include "sama/core/kokkos_counters.hpp"
#include "sama/core/timer.hpp"
#include "sama/core/vector_ops.hpp"

#include <fmt/format.h>

#include <mpi.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>

namespace sama::training {
namespace {

// The collapse detector judges the weights' spread only while the losses they are computed from
// differ by more than this (standard deviation over the window): equal losses rightly get equal weights.
constexpr double kCollapseLossSpread = 0.1;

}  // namespace

io::MetricsWriter Trainer::open_metrics() const {
  namespace fs = std::filesystem;
  if (opt_.out_dir.empty() || comm_.rank() != 0) return io::MetricsWriter();  // rank 0 writes the shared files
  const std::string path = (fs::path(opt_.out_dir) / "metrics.csv").string();
  const std::vector<std::string> columns{"step",          "epoch",           "lr",
                                         "base_loss",     "meta_loss",       "weight_clean",
                                         "weight_noisy",  "epsilon",         "samples_per_s",
                                         "comm_hidden",   "nonfinite_steps", "test_accuracy",
                                         "test_loss",     "elapsed_s",       "hypergrad_cosine",
                                         "hypergrad_norm_ratio", "weight_spread", "loss_spread",
                                         "logit_min",     "logit_mean",      "logit_max",
                                         "logit_std",     "weight_saturated", "weight_collapsed",
                                         "lambda_grad_norm"};
  // A resumed run keeps the rows up to its checkpoint and appends after them.
  const bool continue_file = state_.start_step > 0 && fs::exists(path);
  if (continue_file) io::truncate_metrics(path, state_.start_step);
  return io::MetricsWriter(path, columns, continue_file);
}

void Trainer::say_header() {
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
      model_description(deck_, model_), model_.num_params(), mwn_.num_params(), total_steps_, batch_size_,
      state_.sampler.batches_per_epoch());
  say("sama: BLAS core {}", blas::blas_core_report());
  say("sama: threads {}", app::threads_report());
  if (comm_.size() > 1)
    say("sama: {} ranks, {} samples each per step; gradient all-reduce ({}) in {} bucket(s) of <= {} MB, "
        "meta strategy {}",
        comm_.size(), local_batch_, reducer_->backend(), reducer_->num_buckets(), deck_.parallel.bucket_mb,
        deck_.meta.strategy);
}

std::string Trainer::weight_net_health(long done, std::map<std::string, double>& row) {
  WeightNetHealth& health = state_.health;
  const std::array<double, WeightNetHealth::kFields> g = health.window;
  double sums[8] = {g[0], g[1], g[2], g[3], g[4], g[7], g[8], g[9]};
  comm_.allreduce_sum(sums, 8);
  double mn = g[5], mx = g[6];
  if (comm_.size() > 1) {
    comm::check_mpi(MPI_Allreduce(MPI_IN_PLACE, &mn, 1, MPI_DOUBLE, MPI_MIN, comm_.get()), "MPI_Allreduce(min)",
                    comm_.get());
    comm::check_mpi(MPI_Allreduce(MPI_IN_PLACE, &mx, 1, MPI_DOUBLE, MPI_MAX, comm_.get()), "MPI_Allreduce(max)",
                    comm_.get());
  }
  health.window = WeightNetHealth::empty_window();
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
        (health.weights_spread && spread < deck_.meta.collapse_spread && loss_spread > kCollapseLossSpread) ||
        saturated >= 1.0;
    if (spread >= deck_.meta.collapse_spread) health.weights_spread = true;
    row["weight_collapsed"] = collapsed ? 1 : 0;
    if (collapsed && health.collapsed_at_step < 0) {
      health.collapsed_at_step = done;
      note = fmt::format(" | WARNING: meta weights collapsed (spread {:.3g} < {:.3g} over losses of spread {:.3g}, "
                         "{:.0f}% saturated)",
                         spread, deck_.meta.collapse_spread, loss_spread, 100 * saturated);
    }
  }
  if (health.lambda_grad_norms > 0)
    row["lambda_grad_norm"] = health.lambda_grad_norm_sum / double(health.lambda_grad_norms);
  health.lambda_grad_norm_sum = 0;
  health.lambda_grad_norms = 0;
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
    model_.losses(state_.theta, batch.xs(), batch.ys(), losses, nn::Mode::eval);  // running statistics
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

void Trainer::log_and_evaluate(long done, double lr, bool log_now, bool eval_now, long timed_steps, double window_s,
                               double elapsed_s, io::MetricsWriter& metrics) {
  app::RunResult& r = state_.result;
  LogWindow& win = state_.window;
  HypergradDiagnostics& hd = state_.diagnostics;
  std::map<std::string, double> row{{"step", double(done)},
                                    {"epoch", double(done) / state_.sampler.batches_per_epoch()},
                                    {"lr", lr},
                                    {"elapsed_s", elapsed_s}};
  if (log_now) {
    // Throughput over the steps this process ran since the timer started (the window itself may hold
    // steps from before a resume, and an evaluation restarts the timer).
    const double sps = double(timed_steps) * double(batch_size_) / std::max(window_s, 1e-9);
    // Window statistics summed over ranks (each rank saw its shard of every batch).
    double w[7] = {win.base_loss,   win.meta_loss,         win.eps,
                   win.w_clean_sum, double(win.w_clean_n), win.w_noisy_sum, double(win.w_noisy_n)};
    comm_.allreduce_sum(w, 7);
    const double base_loss = win.steps ? w[0] / (double(win.steps) * double(batch_size_)) : NAN;
    const double meta_loss =
        win.meta_steps ? w[1] / (double(win.meta_steps) * double(meta_batch_size_)) : NAN;
    const double eps = win.meta_steps ? w[2] / (double(win.meta_steps) * comm_.size()) : NAN;
    const double wc = w[4] > 0 ? w[3] / w[4] : NAN, wn = w[6] > 0 ? w[5] / w[6] : NAN;
    const double eta = double(total_steps_ - done) * batch_size_ / std::max(sps, 1e-9);
    row.insert({{"base_loss", base_loss}, {"meta_loss", meta_loss}, {"weight_clean", wc}, {"weight_noisy", wn},
                {"epsilon", eps}, {"samples_per_s", sps},
                {"nonfinite_steps", double(state_.counters.nonfinite_total)}});
    std::string comm_note;
    if (method_ != meta::Method::none) comm_note += weight_net_health(done, row);
    if (hd.window_diagnoses > 0) {  // the method's λ-gradient against the reference (window mean)
      row["hypergrad_cosine"] = hd.window_cosine / double(hd.window_diagnoses);
      row["hypergrad_norm_ratio"] = hd.window_ratio / double(hd.window_diagnoses);
      comm_note += fmt::format(" | hypergrad vs {} cos {:.3f} ratio {:.3g}", deck_.meta.diagnose_reference,
                               row["hypergrad_cosine"], row["hypergrad_norm_ratio"]);
    }
    hd.window_cosine = hd.window_ratio = 0;
    hd.window_diagnoses = 0;
    if (comm_.size() > 1) {
      row["comm_hidden"] = reducer_->hidden_fraction();
      comm_note += fmt::format(" | comm hidden {:.0f}%", 100 * reducer_->hidden_fraction());
    }
    say("step {}/{} ({:.0f}%) epoch {:.2f} | lr {:.3g} | base loss {:.4f} | meta loss {:.4f} | weight clean {:.3f} "
        "noisy {:.3f} | {:.0f} samples/s{} | ETA {}",
        done, total_steps_, 100.0 * done / total_steps_, row["epoch"], lr, base_loss, meta_loss, wc, wn, sps,
        comm_note, format_duration(eta));
    if (state_.counters.first_window) r.first_train_loss = base_loss;
    state_.counters.first_window = false;
    r.final_train_loss = base_loss;
    r.mean_weight_clean = wc;
    r.mean_weight_noisy = wn;
    win = LogWindow{};
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

std::string Trainer::weight_description() const {
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

app::RunResult Trainer::finish(const GemmRecorder& gemm_count) {
  namespace fs = std::filesystem;
  app::RunResult& r = state_.result;
  r.steps = total_steps_;
  r.meta_steps = state_.counters.meta_steps;
  r.nonfinite_steps = state_.counters.nonfinite_total;
  r.hypergrad_diagnoses = state_.diagnostics.run_diagnoses;
  r.meta_weight_collapsed_at_step = state_.health.collapsed_at_step;
  if (state_.diagnostics.run_diagnoses > 0) {
    r.mean_hypergrad_cosine = state_.diagnostics.run_cosine / double(state_.diagnostics.run_diagnoses);
    r.mean_hypergrad_norm_ratio = state_.diagnostics.run_ratio / double(state_.diagnostics.run_diagnoses);
  }
  r.comm_hidden_fraction = comm_.size() > 1 ? reducer_->hidden_fraction() : 0.0;
  r.comm_exposed_seconds = reducer_->stats().exposed_seconds;
  r.gemm_flops = gemm_count.flops();
  r.gemm_seconds = gemm_count.seconds();
  r.gemm_calls = gemm_count.calls();
  r.train_seconds = state_.train_seconds;
  const long timed = total_steps_ - std::max(state_.start_step, std::min(opt_.untimed_steps, total_steps_ - 1));
  r.samples_per_second = double(timed) * double(batch_size_) / std::max(state_.train_seconds, 1e-9);
  const bool write = !opt_.out_dir.empty() && comm_.rank() == 0;  // rank 0 writes the shared files
  if (write && opt_.final_weights) write_sample_table((fs::path(opt_.out_dir) / "weights.h5").string());
  if (scores_ && !opt_.out_dir.empty()) write_scores((fs::path(opt_.out_dir) / "scores.h5").string());  // collective
  if (opt_.keep_parameters) {
    auto th = Kokkos::create_mirror_view_and_copy(HostSpace(), state_.theta);
    auto la = Kokkos::create_mirror_view_and_copy(HostSpace(), state_.lambda);
    r.theta.assign(host_data(th), host_data(th) + th.extent(0));
    r.lambda.assign(host_data(la), host_data(la) + la.extent(0));
  }
  r.peak_rss_mb = peak_rss_mb();
  return r;
}

}  // namespace sama::training

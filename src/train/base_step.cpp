// The base step: ℓ_i(θ) on the base batch, the weights w_i = MWN_λ(ℓ_i), the gradient of
// (1/B) Σ w_i ℓ_i with its all-reduce overlapping backward, and the update of θ; the window's weight
// statistics and the per-sample scores of an accepted step. (A non-finite step is skipped by the loop.)
#include "sama/train/trainer.hpp"

#include "sama/core/kokkos_counters.hpp"
#include "sama/core/vector_ops.hpp"

#include <algorithm>

namespace sama::training {

void Trainer::backward_allreduce(VecU<const real> coef, VecU<const int> y) {
  reducer_->begin();
  {
    ScopedRegion region("sama::backward");  // the buckets' all-reduces start as layers complete
    model_.backward(state_.theta, coef, y, grad_, [this](std::size_t off, std::size_t n) { reducer_->ready(off, n); });
  }
  ScopedRegion region("sama::gradient_reduction");  // waiting for what backward did not hide
  reducer_->finish();
}

double Trainer::base_gradient() {
  const std::size_t b = base_.size;
  VecU<real> losses = slice<real>(losses_, 0, b), weights = slice<real>(weights_, 0, b), coef = slice<real>(coef_, 0, b);
  const bool grand = scores_ && scores_->collects(app::SampleScores::grand, epoch_);
  {
    ScopedRegion region("sama::base_forward");
    if (buffers_backup_.extent(0) > 0) Kokkos::deep_copy(buffers_backup_, state_.model_buffers);
    use_global_batch_statistics(sync_bn_base_);
    model_.losses(state_.theta, base_.xs(), base_.ys(), losses, nn::Mode::train);  // ℓ_i(θ); running statistics
    if (method_ == meta::Method::none) ops::fill<real>(weights, 1);
    else mwn_.forward(state_.lambda, losses, weights, sum_);       // w_i = MWN_λ(ℓ_i), input detached
    ops::scale<real>(weights, static_cast<real>(1.0 / static_cast<double>(batch_size_)), coef);  // L = (1/B) Σ w_i ℓ_i
    if (scores_) model_.sample_errors(base_.ys(), slice<real>(el2n_, 0, b), slice<int>(correct_, 0, b));
  }
  if (grand) {  // per-sample gradient norms, accumulated by the backward pass itself
    ops::fill<real>(slice<real>(grad_sq_, 0, b), 0);
    collect_sample_grad_norms(model_, slice<real>(grad_sq_, 0, b));
  }
  backward_allreduce(coef, base_.ys());                   // g = ∂L_base/∂θ, summed over ranks
  if (grand) collect_sample_grad_norms(model_, VecU<real>());
  return ops::sum<real>(losses);
}

void Trainer::base_update(double lr, double loss_sum) {
  {
    ScopedRegion region("sama::optimizer_step");
    if (history_)
      history_->record(state_.theta, state_.lambda, slice<const real>(losses_, 0, base_.size), *base_ids_, lr,
                       epoch_);
    state_.base_opt->step(state_.theta, grad_, lr);          // θ ← θ − u(g); keeps what D needs
    if (history_) history_->record_state(*state_.base_opt);  // (unrolled: θ_t, λ_t, inputs, state after)
  }
  settle_model_buffers();
  state_.window.base_loss += loss_sum;
  ++state_.window.steps;
  {
    ScopedRegion region("sama::weight_statistics");
    accumulate_weight_stats();
  }
  if (scores_) {
    ScopedRegion region("sama::scores");
    record_scores();
  }
}

void Trainer::init_batch_statistics() {
  const std::size_t nb = model_.net().num_buffers();
  state_.model_buffers = model_.net().buffers();
  if (nb == 0) return;
  const bool many = comm_.size() > 1;
  sync_bn_base_ = many && deck_.model.sync_batchnorm;
  sync_bn_meta_ = sync_bn_base_ && deck_.meta.strategy == "global";
  buffers_backup_ = make_vec<real>("sama::Trainer::buffers_backup", nb);
  buffers_host_ = HostVec<real>("sama::Trainer::buffers_host", nb);
  // A batch norm layer's sums are at most 4C + 1 values, and its buffers 2C: 2·nb + 1 covers any layer.
  batch_sum_host_ = HostVec<real>("sama::Trainer::batch_sum_host", 2 * nb + 1);
  batch_sum_ = [this](real* data, std::size_t n) {
    SAMA_REQUIRE(n <= batch_sum_host_.extent(0), "batch statistics: {} values to sum, room for {}", n,
                 batch_sum_host_.extent(0));
    using HostU = Kokkos::View<real*, Kokkos::LayoutRight, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
    HostU host(batch_sum_host_.data(), n);
    Kokkos::fence();
    Kokkos::deep_copy(host, VecU<real>(data, n));
    comm::check_mpi(MPI_Allreduce(MPI_IN_PLACE, host.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm_.get()),
                    "MPI_Allreduce(batch statistics)", comm_.get());
    Kokkos::deep_copy(VecU<real>(data, n), host);
  };
}

void Trainer::reject_model_buffers() {
  if (buffers_backup_.extent(0) > 0) Kokkos::deep_copy(state_.model_buffers, buffers_backup_);
}

void Trainer::settle_model_buffers() {
  if (buffers_host_.extent(0) == 0 || sync_bn_base_ || comm_.size() == 1) return;
  Kokkos::deep_copy(buffers_host_, state_.model_buffers);
  const int n = static_cast<int>(buffers_host_.extent(0));
  comm::check_mpi(MPI_Allreduce(MPI_IN_PLACE, buffers_host_.data(), n, MPI_FLOAT, MPI_SUM, comm_.get()),
                  "MPI_Allreduce(running statistics)", comm_.get());
  const real inv = real(1) / static_cast<real>(comm_.size());
  for (int i = 0; i < n; ++i) buffers_host_(i) *= inv;
  Kokkos::deep_copy(state_.model_buffers, buffers_host_);
}

void Trainer::accumulate_weight_stats() {
  if (method_ == meta::Method::none) return;
  Kokkos::deep_copy(weights_host_, weights_);
  Kokkos::deep_copy(losses_host_, losses_);
  const auto& ids = *base_ids_;
  LogWindow& win = state_.window;
  auto& ww = state_.health.window;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const double w = weights_host_(i), l = losses_host_(i);
    if (data_.labels.is_noisy[static_cast<std::size_t>(ids[i])]) {
      win.w_noisy_sum += w;
      ++win.w_noisy_n;
    } else {
      win.w_clean_sum += w;
      ++win.w_clean_n;
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

}  // namespace sama::training

// The meta step: v = ∂L_meta/∂θ on a clean meta batch, then the λ-gradient by the deck's method —
// the ± probe along D ⊙ v (sama, finite_difference), forward mode along D ⊙ v (sama_jvp) or ≈ H⁻¹v
// (neumann, cg), or reverse mode through the last K base steps (unrolled) — the diagnostic against a
// reference method, and the meta optimizer's step. hypergradient_methods.hpp has the math.
#include "sama/train/trainer.hpp"

#include "sama/core/error.hpp"
#include "sama/core/kokkos_counters.hpp"
#include "sama/core/vector_ops.hpp"

#include <algorithm>
#include <cmath>

namespace sama::training {

bool Trainer::meta_due(long step) const {
  return method_ != meta::Method::none && step >= deck_.meta.warmup && state_.base_opt->steps() > 0 &&
         (step - deck_.meta.warmup) % deck_.meta.interval == 0;
}

bool Trainer::diagnosis_due() const {
  return reference_ != meta::Method::none && state_.counters.meta_steps % deck_.meta.diagnose_every == 0;
}

void Trainer::meta_step() {
  ScopedRegion step_region("sama::meta_step");
  use_global_batch_statistics(sync_bn_meta_);  // every pass of the meta step: probes, HVPs, replays
  const auto& meta_ids = state_.meta_sampler.next();
  {
    ScopedRegion gather("sama::meta_gather");
    meta_.load(data_.train, data_.norm, data_.train.labels, meta_ids.data(), meta_ids.size());
  }
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
    ++state_.counters.nonfinite_total;
    return;
  }
  state_.health.lambda_grad_norm_sum += ops::norm2<real>(lambda_grad_);
  ++state_.health.lambda_grad_norms;
  ScopedRegion region("sama::meta_optimizer_step");
  state_.meta_opt->step(state_.lambda, lambda_grad_, deck_.meta.lr);
  state_.window.meta_loss += meta_loss_sum;
  state_.window.eps += epsilon;
  ++state_.window.meta_steps;
  ++state_.counters.meta_steps;
}

double Trainer::meta_gradient() {
  const std::size_t mb = meta_.size;
  const bool global = deck_.meta.strategy == "global";
  // v = ∂L_meta/∂θ on a clean meta batch (the gradient buffer is free again after the base step):
  // "local" keeps each rank's own v (the mean over its meta shard); "global" sums it over ranks.
  VecU<real> meta_losses = slice<real>(losses_, 0, mb), coef = slice<real>(coef_, 0, mb);
  model_.losses(state_.theta, meta_.xs(), meta_.ys(), meta_losses);
  const double meta_loss_sum = ops::sum<real>(meta_losses);
  ops::fill<real>(coef, static_cast<real>(1.0 / static_cast<double>(global ? meta_batch_size_ : mb)));
  if (global) {
    backward_allreduce(coef, meta_.ys());
  } else {
    model_.backward(state_.theta, coef, meta_.ys(), grad_);
  }
  return meta_loss_sum;
}

double Trainer::probe_hypergradient(VecU<real> v) {
  const std::size_t b = base_.size;
  // w = D ⊙ v (in place).
  VecU<real> w = v;
  if (method_ == meta::Method::sama) state_.base_opt->apply_adaptation(v, w);
  // δ_i = ∂ℓ_i/∂θ · w on this rank's shard of the last base batch, by the ± probe.
  VecU<real> delta = slice<real>(delta_, 0, b);
  const meta::ProbeInfo probe =
      meta::directional_loss_derivative<real>(model_, state_.theta, w, deck_.meta.alpha, base_.xs(), base_.ys(), probe_, delta);
  // ∇λ L_meta ≈ − ∂/∂λ (1/B) Σ_i w_i(λ) δ_i over the global batch: the MWN's inputs are those of the
  // base step, and its backward sums the λ-gradient over ranks (one all-reduce).
  ops::scale<real>(delta, static_cast<real>(-1.0 / static_cast<double>(batch_size_)), delta);
  mwn_.backward(state_.lambda, delta, lambda_grad_, sum_);
  return probe.epsilon;
}

void Trainer::hypergradient(meta::Method method, long k, VecU<const real> v, VecU<real> out) {
  const auto& m = deck_.meta;
  VecU<real> w = direction_;
  switch (method) {
    case meta::Method::sama_jvp:  // w = D ⊙ v
      state_.base_opt->apply_adaptation(v, w);
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
  meta::lambda_gradient_along<real>(model_, state_.theta, w, base_.xs(), base_.ys(), static_cast<double>(batch_size_),
                                    mwn_, state_.lambda, sum_, slice<real>(losses_, 0, b), slice<real>(delta_, 0, b),
                                    out);
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
  hessian_->bind(state_.theta, meta::WeightedBatch<real>{base_.xs(), base_.ys(), coef}, reduce);
}

void Trainer::unrolled_hypergradient(VecU<const real> v, long k, VecU<real> out) {
  const bool global = deck_.meta.strategy == "global";
  meta::UnrollProblem<real> pb;
  pb.model = &model_;
  pb.mwn = &mwn_;
  pb.hessian = hessian_.get();
  pb.adjoint = adjoint_.get();
  pb.load = [this](const std::vector<std::int64_t>& ids, long epoch) {  // a recorded batch, gathered again
    const long now = epoch_;
    epoch_ = epoch;  // augmented as in its own step
    unroll_batch_->load(data_.train, data_.norm, data_.labels.observed, ids.data(), ids.size(), augment_);
    epoch_ = now;
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
  state_.diagnostics.window_cosine += cosine;
  state_.diagnostics.window_ratio += ratio;
  ++state_.diagnostics.window_diagnoses;
  state_.diagnostics.run_cosine += cosine;
  state_.diagnostics.run_ratio += ratio;
  ++state_.diagnostics.run_diagnoses;
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

}  // namespace sama::training

#pragma once
// LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning"): Adam moments per element,
// then one trust ratio per parameter group l (a layer's slice of θ). m, v start at 0:
//   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  m̂ = m/(1−β1ᵗ);  v̂ = v/(1−β2ᵗ)
//   r = m̂/(√v̂ + ε) + wd·θ
//   ρ_l = ‖θ_l‖/‖r_l‖ (ρ_l = 1 where either norm is 0);  θ_l ← θ_l − lr·ρ_l·r_l
// (θ is the value before the step; weight decay is decoupled from the moments and scaled by ρ.)
//
// Adaptation, exact. With A = ∂r/∂g, diagonal and equal to Adam's D at lr = 1 (adam.hpp), and
// ∂ρ_l/∂g_j = −ρ_l·r_j·A_j/‖r_l‖² for j in l, the Jacobian is block-diagonal over the groups:
//   D_l = lr·ρ_l·(I − r̂_l r̂_lᵀ)·diag(A_l),   r̂_l = r_l/‖r_l‖      (D_l = lr·diag(A_l) where ρ_l = 1)
// a diagonal part with a rank-one correction per group; D is not diagonal and not symmetric.
//   apply_jacobian:   D·v  = lr·ρ·(A⊙v − r·⟨r, A⊙v⟩/‖r‖²)   (the JVP: the change of u along v)
//   apply_adaptation: Dᵀv = lr·ρ·A⊙(v − r·⟨r, v⟩/‖r‖²)      (the VJP: what SAMA's hypergradient needs)
// Both cost two passes over θ and one reduction per group. (ρ_l = 1 by the "either norm is 0" rule
// is constant near a point where ‖θ_l‖ = 0; where ‖r_l‖ = 0 the update is not differentiable and
// the diagonal part is used.)
#include "sama/optim/optimizer.hpp"

namespace sama::optim {

template <class T>
class Lamb final : public Optimizer<T> {
 public:
  /// groups: (offset, count) pairs that tile [0, n) in order, each count > 0; empty = one group.
  /// Validates β1, β2 ∈ [0,1), eps > 0, weight_decay ≥ 0 and the groups (sama::Error otherwise).
  Lamb(std::size_t n, double beta1, double beta2, double eps, double weight_decay,
       std::vector<std::pair<std::size_t, std::size_t>> groups = {});

  std::string name() const override { return "lamb"; }
  void step(VecU<T> theta, VecU<const T> grad, double lr) override;
  /// out = Dᵀv (see above). out may alias v.
  void apply_adaptation(VecU<const T> v, VecU<T> out) const override;
  /// out = D·v, the Jacobian-vector product (see above). out may alias v.
  void apply_jacobian(VecU<const T> v, VecU<T> out) const;
  long steps() const override { return steps_; }
  std::vector<std::pair<std::string, Vec<T>>> state() const override;
  void set_steps(long t) override;
  double last_lr() const override { return last_lr_; }
  void set_last_lr(double lr) override;

  const std::vector<std::pair<std::size_t, std::size_t>>& groups() const { return groups_; }
  /// ρ_l of the last step, per group (recomputed from the state).
  std::vector<double> trust_ratios() const;
  /// apply_adaptation (transpose) or apply_jacobian. Public only because it holds KOKKOS_LAMBDAs:
  /// nvcc rejects extended lambdas in private or protected member functions (DESIGN.md §3).
  void apply(VecU<const T> v, VecU<T> out, bool transpose) const;

 private:
  struct Ratio {
    double rho;        // ρ_l
    double rr;         // ‖r_l‖²
    bool depends_on_g;  // ρ_l = ‖θ_l‖/‖r_l‖ (both norms > 0), not the constant 1
  };
  /// Per group, from the stored update r and the stored ‖θ_l‖ (the step uses these too, so D after
  /// a restore is bitwise the D before the checkpoint).
  std::vector<Ratio> ratios() const;

  std::size_t n_;
  double beta1_, beta2_, eps_, weight_decay_;
  std::vector<std::pair<std::size_t, std::size_t>> groups_;
  Vec<T> exp_avg_, exp_avg_sq_, last_grad_, last_update_;
  Vec<T> param_norm_;  // ‖θ_l‖ before the last step, one per group
  HostVec<T> param_norm_host_;  // its host copy, for the per-group trust ratios (allocated once)
  long steps_ = 0;
  double last_lr_ = 0.0;
};

extern template class Lamb<float>;
extern template class Lamb<double>;

}  // namespace sama::optim

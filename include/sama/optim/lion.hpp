#pragma once
// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms") with decoupled weight
// decay; m starts at 0:
//   c = β1·m + (1−β1)·g;  θ ← θ·(1 − lr·wd) − lr·sign(c);  m ← β2·m + (1−β2)·g
// The true adaptation ∂u/∂g = lr·(1−β1)·δ(c)·… is zero almost everywhere, so SAMA would learn
// nothing through it. D is instead that of a surrogate update θ ← θ·(1 − lr·wd) − lr·φ(c):
//   "tanh":     φ(c) = tanh(c/τ)   D = lr·(1−β1)·(1 − tanh²(c/τ))/τ   (→ sign(c) as τ → 0)
//   "identity": φ(c) = c           D = lr·(1−β1)                      (straight-through)
//   "zero":     φ(c) = sign(c)     D = 0                              (the honest derivative)
// D is exact for the surrogate update. step() applies the real sign update unless the optimizer was
// built with smooth_step = true, which applies the surrogate update itself (tests, experiments).
#include "sama/optim/optimizer.hpp"

namespace sama::optim {

enum class LionSurrogate { tanh, identity, zero };

/// "tanh", "identity" or "zero"; anything else throws sama::Error listing the valid names.
LionSurrogate parse_lion_surrogate(const std::string& name);

template <class T>
class Lion final : public Optimizer<T> {
 public:
  /// Validates β1, β2 ∈ [0,1), weight_decay ≥ 0, temperature > 0 (sama::Error otherwise).
  Lion(std::size_t n, double beta1, double beta2, double weight_decay, LionSurrogate surrogate, double temperature,
       bool smooth_step = false);

  std::string name() const override { return "lion"; }
  void step(VecU<T> theta, VecU<const T> grad, double lr) override;
  /// out = D ⊙ v with D of the surrogate (see above).
  void apply_adaptation(VecU<const T> v, VecU<T> out) const override;
  long steps() const override { return steps_; }
  std::vector<std::pair<std::string, Vec<T>>> state() const override;
  void set_steps(long t) override;
  double last_lr() const override { return last_lr_; }
  void set_last_lr(double lr) override;

 private:
  std::size_t n_;
  double beta1_, beta2_, weight_decay_;
  LionSurrogate surrogate_;
  double temperature_;
  bool smooth_step_;
  Vec<T> exp_avg_, last_interp_;  // m, and c of the last step
  long steps_ = 0;
  double last_lr_ = 0.0;
};

extern template class Lion<float>;
extern template class Lion<double>;

}  // namespace sama::optim

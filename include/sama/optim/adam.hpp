#pragma once
// Adam and AdamW (decoupled weight decay), PyTorch semantics:
//   Adam:  g' = g + wd·θ                 AdamW: θ ← θ − lr·wd·θ, g' = g
//   m = β1·m + (1−β1)·g';  v = β2·v + (1−β2)·g'²;  m̂ = m/(1−β1ᵗ);  v̂ = v/(1−β2ᵗ)
//   θ ← θ − lr·m̂/(√v̂ + ε)
// Adaptation, exact: with a = (1−β1)/(1−β1ᵗ), b = 2(1−β2)/(1−β2ᵗ),
//   D = lr·[ a/(√v̂+ε) − m̂·b·g' / (2√v̂·(√v̂+ε)²) ]   (second term 0 where v̂ = 0).
// The decoupled decay term of AdamW does not depend on g, so D is the same formula.
#include "sama/optim/optimizer.hpp"

namespace sama::optim {

template <class T>
class Adam final : public Optimizer<T> {
 public:
  /// decoupled = true gives AdamW. Validates β1, β2 ∈ [0,1), eps > 0, weight_decay ≥ 0.
  Adam(std::size_t n, double beta1, double beta2, double eps, double weight_decay, bool decoupled);

  std::string name() const override { return decoupled_ ? "adamw" : "adam"; }
  void step(VecU<T> theta, VecU<const T> grad, double lr) override;
  void apply_adaptation(VecU<const T> v, VecU<T> out) const override;
  long steps() const override { return steps_; }
  std::vector<std::pair<std::string, Vec<T>>> state() const override;
  void set_steps(long t) override;
  double last_lr() const override { return last_lr_; }
  void set_last_lr(double lr) override;

 private:
  std::size_t n_;
  double beta1_, beta2_, eps_, weight_decay_;
  bool decoupled_;
  Vec<T> exp_avg_, exp_avg_sq_, last_grad_;
  long steps_ = 0;
  double last_lr_ = 0.0;
};

extern template class Adam<float>;
extern template class Adam<double>;

}  // namespace sama::optim

#pragma once
// Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay, PyTorch
// semantics with dampening 0:
//   g' = g + wd·θ;  buf = μ·buf + g' (first step: buf = g');
//   d = nesterov ? g' + μ·buf : (μ > 0 ? buf : g');  θ ← θ − lr·d.
// Adaptation D = ∂u/∂g = lr·(1 + μ) with Nesterov, lr otherwise.
#include "sama/optim/optimizer.hpp"

namespace sama::optim {

template <class T>
class SGD final : public Optimizer<T> {
 public:
  /// Validates momentum ∈ [0,1), weight_decay ≥ 0, nesterov ⇒ momentum > 0 (sama::Error otherwise).
  SGD(std::size_t n, double momentum, bool nesterov, double weight_decay);

  std::string name() const override { return "sgd"; }
  void step(VecU<T> theta, VecU<const T> grad, double lr) override;
  void apply_adaptation(VecU<const T> v, VecU<T> out) const override;
  long steps() const override { return steps_; }
  std::vector<std::pair<std::string, Vec<T>>> state() const override;
  void set_steps(long t) override;
  double last_lr() const override { return last_lr_; }
  void set_last_lr(double lr) override;

  /// D (the same for every element): lr·(1+μ) with Nesterov, lr otherwise.
  double adaptation_scale() const;

 private:
  std::size_t n_;
  double momentum_;
  bool nesterov_;
  double weight_decay_;
  Vec<T> buf_;  // allocated only when momentum > 0
  long steps_ = 0;
  double last_lr_ = 0.0;
};

extern template class SGD<float>;
extern template class SGD<double>;

}  // namespace sama::optim

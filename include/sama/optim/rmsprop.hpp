#pragma once
// RMSprop with optional momentum, centring and L2 weight decay, PyTorch semantics (all buffers start
// at 0):
//   g' = g + wd·θ;  v ← α·v + (1−α)·g'²
//   centered: ḡ ← α·ḡ + (1−α)·g';  w = max(v − ḡ², 0)      otherwise: w = v
//   q = g'/(√w + ε);  μ > 0: buf ← μ·buf + q, θ ← θ − lr·buf;  μ = 0: θ ← θ − lr·q
// Adaptation, exact (v and ḡ depend on g; μ·buf does not): with r = 1/(√w + ε),
//   D = lr·r·(1 − (1−α)·p·g'·r),  p = g'/√w (plain) or (g' − ḡ)/√w (centered); p = 0 where w = 0.
// Both |p| and |g'·r| are bounded (v ≥ (1−α)·g'², w ≥ α(1−α)(g' − ḡ_old)²), so no float overflow.
#include "sama/optim/optimizer.hpp"

namespace sama::optim {

template <class T>
class RMSprop final : public Optimizer<T> {
 public:
  /// Validates α ∈ [0,1), momentum ∈ [0,1), eps > 0, weight_decay ≥ 0 (sama::Error otherwise).
  RMSprop(std::size_t n, double alpha, double eps, double momentum, bool centered, double weight_decay);

  std::string name() const override { return "rmsprop"; }
  void step(VecU<T> theta, VecU<const T> grad, double lr) override;
  void apply_adaptation(VecU<const T> v, VecU<T> out) const override;
  long steps() const override { return steps_; }
  std::vector<std::pair<std::string, Vec<T>>> state() const override;
  void set_steps(long t) override;
  double last_lr() const override { return last_lr_; }
  void set_last_lr(double lr) override;

 private:
  std::size_t n_;
  double alpha_, eps_, momentum_;
  bool centered_;
  double weight_decay_;
  Vec<T> square_avg_, last_grad_;
  Vec<T> grad_avg_;  // allocated only when centered
  Vec<T> buf_;       // allocated only when momentum > 0
  long steps_ = 0;
  double last_lr_ = 0.0;
};

extern template class RMSprop<float>;
extern template class RMSprop<double>;

}  // namespace sama::optim

#pragma once
// Adagrad with L2 weight decay, PyTorch semantics (no lr decay):
//   g' = g + wd·θ;  s ← s + g'²  (s starts at initial_accumulator);  θ ← θ − lr·g'/(√s + ε)
// Adaptation, exact (s depends on g through g'²): with r = 1/(√s + ε),
//   D = lr·[ r − g'²·r²/√s ] = lr·r·(1 − (g'/√s)·g'·r)   (second term 0 where s = 0).
#include "sama/optim/optimizer.hpp"

namespace sama::optim {

template <class T>
class Adagrad final : public Optimizer<T> {
 public:
  /// Validates eps > 0, weight_decay ≥ 0, initial_accumulator ≥ 0 (sama::Error otherwise).
  Adagrad(std::size_t n, double eps, double weight_decay, double initial_accumulator);

  std::string name() const override { return "adagrad"; }
  void step(VecU<T> theta, VecU<const T> grad, double lr) override;
  void apply_adaptation(VecU<const T> v, VecU<T> out) const override;
  long steps() const override { return steps_; }
  std::vector<std::pair<std::string, Vec<T>>> state() const override;
  void set_steps(long t) override;
  double last_lr() const override { return last_lr_; }
  void set_last_lr(double lr) override;

 private:
  std::size_t n_;
  double eps_, weight_decay_;
  Vec<T> sum_, last_grad_;
  long steps_ = 0;
  double last_lr_ = 0.0;
};

extern template class Adagrad<float>;
extern template class Adagrad<double>;

}  // namespace sama::optim

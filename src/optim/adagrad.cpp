// Adagrad with the exact adaptation D = ∂u/∂g; see sama/optim/adagrad.hpp.
#include "sama/optim/adagrad.hpp"

#include "sama/core/kernel_math.hpp"
#include "sama/core/error.hpp"

#include <cmath>

namespace sama::optim {

namespace {

void check_lr(double lr) {
  SAMA_REQUIRE(std::isfinite(lr) && lr >= 0.0, "optimizer 'adagrad': learning rate must be finite and >= 0, got {}",
               lr);
}

}  // namespace

template <class T>
Adagrad<T>::Adagrad(std::size_t n, double eps, double weight_decay, double initial_accumulator)
    : n_(n), eps_(eps), weight_decay_(weight_decay) {
  SAMA_REQUIRE(eps > 0.0 && std::isfinite(eps), "optimizer 'adagrad': eps must be finite and > 0, got {}", eps);
  SAMA_REQUIRE(weight_decay >= 0.0 && std::isfinite(weight_decay),
               "optimizer 'adagrad': weight_decay must be finite and >= 0, got {}", weight_decay);
  SAMA_REQUIRE(initial_accumulator >= 0.0 && std::isfinite(initial_accumulator),
               "optimizer 'adagrad': initial_accumulator must be finite and >= 0, got {}", initial_accumulator);
  sum_ = Vec<T>("sama::Adagrad::sum", n_);
  last_grad_ = Vec<T>("sama::Adagrad::last_grad", n_);
  Kokkos::deep_copy(sum_, static_cast<T>(initial_accumulator));
}

template <class T>
void Adagrad<T>::step(VecU<T> theta, VecU<const T> grad, double lr) {
  SAMA_REQUIRE(theta.extent(0) == n_ && grad.extent(0) == n_,
               "optimizer 'adagrad': expected {} parameters and gradients, got {} and {}", n_, theta.extent(0),
               grad.extent(0));
  check_lr(lr);
  const T lr_t = static_cast<T>(lr);
  const T wd = static_cast<T>(weight_decay_);
  const T eps = static_cast<T>(eps_);
  auto s = sum_;
  auto last = last_grad_;
  Kokkos::parallel_for(
      "sama::Adagrad::step", Range(0, n_), KOKKOS_LAMBDA(const std::size_t i) {
        const T g = grad(i) + wd * theta(i);
        const T si = s(i) + g * g;
        s(i) = si;
        last(i) = g;
        theta(i) -= lr_t * g / (kmath::kk_sqrt(si) + eps);
      });
  ++steps_;
  last_lr_ = lr;
}

template <class T>
void Adagrad<T>::apply_adaptation(VecU<const T> v, VecU<T> out) const {
  SAMA_REQUIRE(steps_ > 0, "optimizer 'adagrad': apply_adaptation called before any step (D is undefined)");
  SAMA_REQUIRE(v.extent(0) == n_ && out.extent(0) == n_,
               "optimizer 'adagrad': apply_adaptation expects {} elements, got v = {} and out = {}", n_, v.extent(0),
               out.extent(0));
  const T lr = static_cast<T>(last_lr_);
  const T eps = static_cast<T>(eps_);
  const T zero = T(0);
  auto s = sum_;
  auto g = last_grad_;
  Kokkos::parallel_for(
      "sama::Adagrad::apply_adaptation", Range(0, n_), KOKKOS_LAMBDA(const std::size_t i) {
        const T root = kmath::kk_sqrt(s(i));
        const T r = T(1) / (root + eps);
        // |g'|/√s ≤ 1 and |g'|·r < 1: no overflow or underflow in float; the limit at s = 0 is 0.
        const T q = root > zero ? g(i) / root : zero;
        out(i) = lr * r * (T(1) - q * (g(i) * r)) * v(i);
      });
}

template <class T>
std::vector<std::pair<std::string, Vec<T>>> Adagrad<T>::state() const {
  return {{"sum", sum_}, {"last_grad", last_grad_}};
}

template <class T>
void Adagrad<T>::set_steps(long t) {
  SAMA_REQUIRE(t >= 0, "optimizer 'adagrad': step count must be >= 0, got {}", t);
  steps_ = t;
}

template <class T>
void Adagrad<T>::set_last_lr(double lr) {
  check_lr(lr);
  last_lr_ = lr;
}

template class Adagrad<float>;
template class Adagrad<double>;

}  // namespace sama::optim

// Lion with the adaptation of a documented surrogate; see sama/optim/lion.hpp.
#include "sama/optim/lion.hpp"

#include "sama/core/kernel_math.hpp"
#include "sama/core/error.hpp"

#include <cmath>

namespace sama::optim {

namespace {

void check_lr(double lr) {
  SAMA_REQUIRE(std::isfinite(lr) && lr >= 0.0, "optimizer 'lion': learning rate must be finite and >= 0, got {}", lr);
}

}  // namespace

LionSurrogate parse_lion_surrogate(const std::string& name) {
  if (name == "tanh") return LionSurrogate::tanh;
  if (name == "identity") return LionSurrogate::identity;
  if (name == "zero") return LionSurrogate::zero;
  fail("optimizer 'lion': unknown surrogate '{}' (valid: tanh, identity, zero)", name);
}

template <class T>
Lion<T>::Lion(std::size_t n, double beta1, double beta2, double weight_decay, LionSurrogate surrogate,
              double temperature, bool smooth_step)
    : n_(n),
      beta1_(beta1),
      beta2_(beta2),
      weight_decay_(weight_decay),
      surrogate_(surrogate),
      temperature_(temperature),
      smooth_step_(smooth_step) {
  SAMA_REQUIRE(beta1 >= 0.0 && beta1 < 1.0, "optimizer 'lion': beta1 must be in [0, 1), got {}", beta1);
  SAMA_REQUIRE(beta2 >= 0.0 && beta2 < 1.0, "optimizer 'lion': beta2 must be in [0, 1), got {}", beta2);
  SAMA_REQUIRE(weight_decay >= 0.0 && std::isfinite(weight_decay),
               "optimizer 'lion': weight_decay must be finite and >= 0, got {}", weight_decay);
  SAMA_REQUIRE(temperature > 0.0 && std::isfinite(temperature),
               "optimizer 'lion': lion_temperature must be finite and > 0, got {}", temperature);
  exp_avg_ = Vec<T>("sama::Lion::exp_avg", n_);
  last_interp_ = Vec<T>("sama::Lion::last_interp", n_);
}

template <class T>
void Lion<T>::step(VecU<T> theta, VecU<const T> grad, double lr) {
  SAMA_REQUIRE(theta.extent(0) == n_ && grad.extent(0) == n_,
               "optimizer 'lion': expected {} parameters and gradients, got {} and {}", n_, theta.extent(0),
               grad.extent(0));
  check_lr(lr);
  const T lr_t = static_cast<T>(lr);
  const T shrink = static_cast<T>(1.0 - lr * weight_decay_);  // θ ← (1 − lr·wd)·θ
  const T b1 = static_cast<T>(beta1_);
  const T omb1 = static_cast<T>(1.0 - beta1_);
  const T b2 = static_cast<T>(beta2_);
  const T omb2 = static_cast<T>(1.0 - beta2_);
  const T inv_tau = static_cast<T>(1.0 / temperature_);
  // The direction φ(c): sign(c) (the real update, also the "zero" surrogate's φ), or the surrogate's
  // φ when smooth_step is set.
  const LionSurrogate phi = smooth_step_ ? surrogate_ : LionSurrogate::zero;
  auto m = exp_avg_;
  auto last = last_interp_;
  Kokkos::parallel_for(
      "sama::Lion::step", Range(0, n_), KOKKOS_LAMBDA(const std::size_t i) {
        const T g = grad(i);
        const T c = b1 * m(i) + omb1 * g;
        last(i) = c;
        m(i) = b2 * m(i) + omb2 * g;
        const T dir = phi == LionSurrogate::tanh       ? kmath::kk_tanh(c * inv_tau)
                      : phi == LionSurrogate::identity ? c
                                                       : kmath::sign(c);
        theta(i) = theta(i) * shrink - lr_t * dir;
      });
  ++steps_;
  last_lr_ = lr;
}

template <class T>
void Lion<T>::apply_adaptation(VecU<const T> v, VecU<T> out) const {
  SAMA_REQUIRE(steps_ > 0, "optimizer 'lion': apply_adaptation called before any step (D is undefined)");
  SAMA_REQUIRE(v.extent(0) == n_ && out.extent(0) == n_,
               "optimizer 'lion': apply_adaptation expects {} elements, got v = {} and out = {}", n_, v.extent(0),
               out.extent(0));
  const double scale = last_lr_ * (1.0 - beta1_);  // lr·∂c/∂g
  if (surrogate_ == LionSurrogate::zero) {
    Kokkos::deep_copy(out, T(0));
    return;
  }
  if (surrogate_ == LionSurrogate::identity) {
    const T d = static_cast<T>(scale);
    Kokkos::parallel_for(
        "sama::Lion::apply_adaptation", Range(0, n_), KOKKOS_LAMBDA(const std::size_t i) { out(i) = d * v(i); });
    return;
  }
  // tanh: d/dc tanh(c/τ) = sech²(c/τ)/τ, evaluated without the cancellation of 1 − tanh².
  const T coef = static_cast<T>(scale / temperature_);
  const T inv_tau = static_cast<T>(1.0 / temperature_);
  auto c = last_interp_;
  Kokkos::parallel_for(
      "sama::Lion::apply_adaptation", Range(0, n_),
      KOKKOS_LAMBDA(const std::size_t i) { out(i) = coef * kmath::sech2(c(i) * inv_tau) * v(i); });
}

template <class T>
std::vector<std::pair<std::string, Vec<T>>> Lion<T>::state() const {
  return {{"exp_avg", exp_avg_}, {"last_interp", last_interp_}};
}

template <class T>
void Lion<T>::set_steps(long t) {
  SAMA_REQUIRE(t >= 0, "optimizer 'lion': step count must be >= 0, got {}", t);
  steps_ = t;
}

template <class T>
void Lion<T>::set_last_lr(double lr) {
  check_lr(lr);
  last_lr_ = lr;
}

template class Lion<float>;
template class Lion<double>;

}  // namespace sama::optim

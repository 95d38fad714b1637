// Adam and AdamW with the exact adaptation D = ∂u/∂g; see sama/optim/adam.hpp.
#include "sama/optim/adam.hpp"

#include "sama/core/kernel_math.hpp"
#include "sama/core/error.hpp"

#include <cmath>

namespace sama::optim {

namespace {

const char* adam_name(bool decoupled) { return decoupled ? "adamw" : "adam"; }

void check_lr(const char* who, double lr) {
  SAMA_REQUIRE(std::isfinite(lr) && lr >= 0.0, "optimizer '{}': learning rate must be finite and >= 0, got {}", who,
               lr);
}

}  // namespace

template <class T>
Adam<T>::Adam(std::size_t n, double beta1, double beta2, double eps, double weight_decay, bool decoupled)
    : n_(n), beta1_(beta1), beta2_(beta2), eps_(eps), weight_decay_(weight_decay), decoupled_(decoupled) {
  const char* who = adam_name(decoupled);
  SAMA_REQUIRE(beta1 >= 0.0 && beta1 < 1.0, "optimizer '{}': beta1 must be in [0, 1), got {}", who, beta1);
  SAMA_REQUIRE(beta2 >= 0.0 && beta2 < 1.0, "optimizer '{}': beta2 must be in [0, 1), got {}", who, beta2);
  SAMA_REQUIRE(eps > 0.0 && std::isfinite(eps), "optimizer '{}': eps must be finite and > 0, got {}", who, eps);
  SAMA_REQUIRE(weight_decay >= 0.0 && std::isfinite(weight_decay),
               "optimizer '{}': weight_decay must be finite and >= 0, got {}", who, weight_decay);
  exp_avg_ = Vec<T>("sama::Adam::exp_avg", n_);
  exp_avg_sq_ = Vec<T>("sama::Adam::exp_avg_sq", n_);
  last_grad_ = Vec<T>("sama::Adam::last_grad", n_);
}

template <class T>
void Adam<T>::step(VecU<T> theta, VecU<const T> grad, double lr) {
  const char* who = adam_name(decoupled_);
  SAMA_REQUIRE(theta.extent(0) == n_ && grad.extent(0) == n_,
               "optimizer '{}': expected {} parameters and gradients, got {} and {}", who, n_, theta.extent(0),
               grad.extent(0));
  check_lr(who, lr);
  const long t = steps_ + 1;
  const double bc1 = 1.0 - std::pow(beta1_, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(beta2_, static_cast<double>(t));
  const T b1 = static_cast<T>(beta1_);
  const T b2 = static_cast<T>(beta2_);
  const T omb1 = static_cast<T>(1.0 - beta1_);
  const T omb2 = static_cast<T>(1.0 - beta2_);
  const T eps = static_cast<T>(eps_);
  const T step_size = static_cast<T>(lr / bc1);          // lr / (1 − β1ᵗ)
  const T inv_sqrt_bc2 = static_cast<T>(1.0 / std::sqrt(bc2));  // √v̂ = √v / √(1 − β2ᵗ)
  const bool decoupled = decoupled_;
  const T l2 = static_cast<T>(decoupled ? 0.0 : weight_decay_);       // Adam: g' = g + wd·θ
  const T shrink = static_cast<T>(1.0 - lr * weight_decay_);          // AdamW: θ ← (1 − lr·wd)·θ
  auto m = exp_avg_;
  auto v = exp_avg_sq_;
  auto last = last_grad_;
  Kokkos::parallel_for(
      "sama::Adam::step", Range(0, n_), KOKKOS_LAMBDA(const std::size_t i) {
        T th = theta(i);
        T g = grad(i);
        if (decoupled) {
          th *= shrink;
        } else {
          g += l2 * th;
        }
        const T mi = b1 * m(i) + omb1 * g;
        const T vi = b2 * v(i) + omb2 * g * g;
        m(i) = mi;
        v(i) = vi;
        last(i) = g;
        const T denom = kmath::kk_sqrt(vi) * inv_sqrt_bc2 + eps;
        theta(i) = th - step_size * mi / denom;
      });
  steps_ = t;
  last_lr_ = lr;
}

template <class T>
void Adam<T>::apply_adaptation(VecU<const T> vin, VecU<T> out) const {
  const char* who = adam_name(decoupled_);
  SAMA_REQUIRE(steps_ > 0, "optimizer '{}': apply_adaptation called before any step (D is undefined)", who);
  SAMA_REQUIRE(vin.extent(0) == n_ && out.extent(0) == n_,
               "optimizer '{}': apply_adaptation expects {} elements, got v = {} and out = {}", who, n_,
               vin.extent(0), out.extent(0));
  const double t = static_cast<double>(steps_);
  const double bc1 = 1.0 - std::pow(beta1_, t);
  const double bc2 = 1.0 - std::pow(beta2_, t);
  // D = lr·a/(√v̂+ε) − lr·m̂·b·g'/(2√v̂(√v̂+ε)²) with a = (1−β1)/bc1, b = 2(1−β2)/bc2, m̂ = m/bc1:
  //   coef_a = lr·a, coef_b = lr·b/(2·bc1) so that the second term is coef_b·m·g'/(√v̂(√v̂+ε)²).
  const T coef_a = static_cast<T>(last_lr_ * (1.0 - beta1_) / bc1);
  const T coef_b = static_cast<T>(last_lr_ * (1.0 - beta2_) / (bc2 * bc1));
  const T inv_sqrt_bc2 = static_cast<T>(1.0 / std::sqrt(bc2));
  const T eps = static_cast<T>(eps_);
  const T zero = T(0);
  auto m = exp_avg_;
  auto v = exp_avg_sq_;
  auto g = last_grad_;
  Kokkos::parallel_for(
      "sama::Adam::apply_adaptation", Range(0, n_), KOKKOS_LAMBDA(const std::size_t i) {
        const T s = kmath::kk_sqrt(v(i)) * inv_sqrt_bc2;  // √v̂
        const T r = T(1) / (s + eps);
        // |g'|/√v̂ is bounded, so (m·r)·(g'/√v̂)·r never underflows in float; its limit at v̂ = 0 is 0.
        const T q = s > zero ? g(i) / s : zero;
        out(i) = r * (coef_a - coef_b * (m(i) * r) * q) * vin(i);
      });
}

template <class T>
std::vector<std::pair<std::string, Vec<T>>> Adam<T>::state() const {
  return {{"exp_avg", exp_avg_}, {"exp_avg_sq", exp_avg_sq_}, {"last_grad", last_grad_}};
}

template <class T>
void Adam<T>::set_steps(long t) {
  SAMA_REQUIRE(t >= 0, "optimizer '{}': step count must be >= 0, got {}", adam_name(decoupled_), t);
  steps_ = t;
}

template <class T>
void Adam<T>::set_last_lr(double lr) {
  check_lr(adam_name(decoupled_), lr);
  last_lr_ = lr;
}

template class Adam<float>;
template class Adam<double>;

}  // namespace sama::optim

// RMSprop with the exact adaptation D = ∂u/∂g; see sama/optim/rmsprop.hpp.
#include "sama/optim/rmsprop.hpp"

#include "sama/core/kernel_math.hpp"
#include "sama/core/error.hpp"

#include <cmath>

namespace sama::optim {

namespace {

void check_lr(double lr) {
  SAMA_REQUIRE(std::isfinite(lr) && lr >= 0.0, "optimizer 'rmsprop': learning rate must be finite and >= 0, got {}",
               lr);
}

}  // namespace

template <class T>
RMSprop<T>::RMSprop(std::size_t n, double alpha, double eps, double momentum, bool centered, double weight_decay)
    : n_(n), alpha_(alpha), eps_(eps), momentum_(momentum), centered_(centered), weight_decay_(weight_decay) {
  SAMA_REQUIRE(alpha >= 0.0 && alpha < 1.0, "optimizer 'rmsprop': alpha must be in [0, 1), got {}", alpha);
  SAMA_REQUIRE(eps > 0.0 && std::isfinite(eps), "optimizer 'rmsprop': eps must be finite and > 0, got {}", eps);
  SAMA_REQUIRE(momentum >= 0.0 && momentum < 1.0, "optimizer 'rmsprop': momentum must be in [0, 1), got {}",
               momentum);
  SAMA_REQUIRE(weight_decay >= 0.0 && std::isfinite(weight_decay),
               "optimizer 'rmsprop': weight_decay must be finite and >= 0, got {}", weight_decay);
  square_avg_ = Vec<T>("sama::RMSprop::square_avg", n_);
  last_grad_ = Vec<T>("sama::RMSprop::last_grad", n_);
  if (centered_) grad_avg_ = Vec<T>("sama::RMSprop::grad_avg", n_);
  if (momentum_ > 0.0) buf_ = Vec<T>("sama::RMSprop::momentum_buffer", n_);
}

template <class T>
void RMSprop<T>::step(VecU<T> theta, VecU<const T> grad, double lr) {
  SAMA_REQUIRE(theta.extent(0) == n_ && grad.extent(0) == n_,
               "optimizer 'rmsprop': expected {} parameters and gradients, got {} and {}", n_, theta.extent(0),
               grad.extent(0));
  check_lr(lr);
  const T lr_t = static_cast<T>(lr);
  const T wd = static_cast<T>(weight_decay_);
  const T a = static_cast<T>(alpha_);
  const T oma = static_cast<T>(1.0 - alpha_);
  const T eps = static_cast<T>(eps_);
  const T mu = static_cast<T>(momentum_);
  const bool centered = centered_;
  const bool use_buf = momentum_ > 0.0;
  auto sq = square_avg_;
  auto ga = grad_avg_;
  auto buf = buf_;
  auto last = last_grad_;
  Kokkos::parallel_for(
      "sama::RMSprop::step", Range(0, n_), KOKKOS_LAMBDA(const std::size_t i) {
        const T g = grad(i) + wd * theta(i);
        const T vi = a * sq(i) + oma * g * g;
        sq(i) = vi;
        last(i) = g;
        T w = vi;
        if (centered) {
          const T gi = a * ga(i) + oma * g;
          ga(i) = gi;
          w = vi - gi * gi;
          if (w < T(0)) w = T(0);  // v ≥ ḡ² in exact arithmetic; round-off only
        }
        const T q = g / (kmath::kk_sqrt(w) + eps);
        if (use_buf) {
          const T b = mu * buf(i) + q;
          buf(i) = b;
          theta(i) -= lr_t * b;
        } else {
          theta(i) -= lr_t * q;
        }
      });
  ++steps_;
  last_lr_ = lr;
}

template <class T>
void RMSprop<T>::apply_adaptation(VecU<const T> vin, VecU<T> out) const {
  SAMA_REQUIRE(steps_ > 0, "optimizer 'rmsprop': apply_adaptation called before any step (D is undefined)");
  SAMA_REQUIRE(vin.extent(0) == n_ && out.extent(0) == n_,
               "optimizer 'rmsprop': apply_adaptation expects {} elements, got v = {} and out = {}", n_,
               vin.extent(0), out.extent(0));
  const T lr = static_cast<T>(last_lr_);
  const T oma = static_cast<T>(1.0 - alpha_);
  const T eps = static_cast<T>(eps_);
  const T zero = T(0);
  const bool centered = centered_;
  auto sq = square_avg_;
  auto ga = grad_avg_;
  auto g = last_grad_;
  Kokkos::parallel_for(
      "sama::RMSprop::apply_adaptation", Range(0, n_), KOKKOS_LAMBDA(const std::size_t i) {
        // The same w as the step (bitwise: same operations on the stored v and ḡ).
        T w = sq(i);
        T num = g(i);  // ∂w/∂g = 2(1−α)·num
        if (centered) {
          w = sq(i) - ga(i) * ga(i);
          if (w < zero) w = zero;
          num = g(i) - ga(i);
        }
        const T root = kmath::kk_sqrt(w);
        const T r = T(1) / (root + eps);
        const T p = root > zero ? num / root : zero;
        out(i) = lr * r * (T(1) - oma * p * (g(i) * r)) * vin(i);
      });
}

template <class T>
std::vector<std::pair<std::string, Vec<T>>> RMSprop<T>::state() const {
  std::vector<std::pair<std::string, Vec<T>>> s{{"square_avg", square_avg_}};
  if (centered_) s.emplace_back("grad_avg", grad_avg_);
  if (momentum_ > 0.0) s.emplace_back("momentum_buffer", buf_);
  s.emplace_back("last_grad", last_grad_);
  return s;
}

template <class T>
void RMSprop<T>::set_steps(long t) {
  SAMA_REQUIRE(t >= 0, "optimizer 'rmsprop': step count must be >= 0, got {}", t);
  steps_ = t;
}

template <class T>
void RMSprop<T>::set_last_lr(double lr) {
  check_lr(lr);
  last_lr_ = lr;
}

template class RMSprop<float>;
template class RMSprop<double>;

}  // namespace sama::optim

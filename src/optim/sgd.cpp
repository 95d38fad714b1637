// SGD with optional (Nesterov) momentum and L2 weight decay; see sama/optim/sgd.hpp.
#include "sama/optim/sgd.hpp"

#include "sama/core/error.hpp"

#include <cmath>

namespace sama::optim {

namespace {

void check_lr(const char* who, double lr) {
  SAMA_REQUIRE(std::isfinite(lr) && lr >= 0.0, "optimizer '{}': learning rate must be finite and >= 0, got {}", who,
               lr);
}

}  // namespace

template <class T>
SGD<T>::SGD(std::size_t n, double momentum, bool nesterov, double weight_decay)
    : n_(n), momentum_(momentum), nesterov_(nesterov), weight_decay_(weight_decay) {
  SAMA_REQUIRE(momentum >= 0.0 && momentum < 1.0, "optimizer 'sgd': momentum must be in [0, 1), got {}", momentum);
  SAMA_REQUIRE(weight_decay >= 0.0 && std::isfinite(weight_decay),
               "optimizer 'sgd': weight_decay must be finite and >= 0, got {}", weight_decay);
  SAMA_REQUIRE(!nesterov || momentum > 0.0, "optimizer 'sgd': nesterov requires momentum > 0, got momentum = {}",
               momentum);
  if (momentum_ > 0.0) buf_ = Vec<T>("sama::SGD::momentum_buffer", n_);
}

template <class T>
void SGD<T>::step(VecU<T> theta, VecU<const T> grad, double lr) {
  SAMA_REQUIRE(theta.extent(0) == n_ && grad.extent(0) == n_,
               "optimizer 'sgd': expected {} parameters and gradients, got {} and {}", n_, theta.extent(0),
               grad.extent(0));
  check_lr("sgd", lr);
  const T lr_t = static_cast<T>(lr);
  const T wd = static_cast<T>(weight_decay_);
  if (momentum_ == 0.0) {
    Kokkos::parallel_for(
        "sama::SGD::step", Range(0, n_), KOKKOS_LAMBDA(const std::size_t i) {
          const T g = grad(i) + wd * theta(i);
          theta(i) -= lr_t * g;
        });
  } else {
    const T mu = static_cast<T>(momentum_);
    const bool first = steps_ == 0;
    const bool nesterov = nesterov_;
    auto buf = buf_;
    Kokkos::parallel_for(
        "sama::SGD::step", Range(0, n_), KOKKOS_LAMBDA(const std::size_t i) {
          const T g = grad(i) + wd * theta(i);
          const T b = first ? g : mu * buf(i) + g;
          buf(i) = b;
          theta(i) -= lr_t * (nesterov ? g + mu * b : b);
        });
  }
  ++steps_;
  last_lr_ = lr;
}

template <class T>
double SGD<T>::adaptation_scale() const {
  return nesterov_ ? last_lr_ * (1.0 + momentum_) : last_lr_;
}

template <class T>
void SGD<T>::apply_adaptation(VecU<const T> v, VecU<T> out) const {
  SAMA_REQUIRE(steps_ > 0, "optimizer 'sgd': apply_adaptation called before any step (D is undefined)");
  SAMA_REQUIRE(v.extent(0) == n_ && out.extent(0) == n_,
               "optimizer 'sgd': apply_adaptation expects {} elements, got v = {} and out = {}", n_, v.extent(0),
               out.extent(0));
  const T d = static_cast<T>(adaptation_scale());
  Kokkos::parallel_for(
      "sama::SGD::apply_adaptation", Range(0, n_), KOKKOS_LAMBDA(const std::size_t i) { out(i) = d * v(i); });
}

template <class T>
std::vector<std::pair<std::string, Vec<T>>> SGD<T>::state() const {
  std::vector<std::pair<std::string, Vec<T>>> s;
  if (momentum_ > 0.0) s.emplace_back("momentum_buffer", buf_);
  return s;
}

template <class T>
void SGD<T>::set_steps(long t) {
  SAMA_REQUIRE(t >= 0, "optimizer 'sgd': step count must be >= 0, got {}", t);
  steps_ = t;
}

template <class T>
void SGD<T>::set_last_lr(double lr) {
  check_lr("sgd", lr);
  last_lr_ = lr;
}

template class SGD<float>;
template class SGD<double>;

}  // namespace sama::optim

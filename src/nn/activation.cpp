#include "sama/nn/activation.hpp"

#include "sama/core/error.hpp"

#include <cmath>

namespace sama::nn {

ActivationKind parse_activation(const std::string& name) {
  if (name == "relu") return ActivationKind::relu;
  if (name == "gelu") return ActivationKind::gelu;
  if (name == "tanh") return ActivationKind::tanh;
  if (name == "sigmoid") return ActivationKind::sigmoid;
  fail("unknown activation '{}' (expected relu, gelu, tanh or sigmoid)", name);
}

std::string to_string(ActivationKind k) {
  switch (k) {
    case ActivationKind::relu: return "relu";
    case ActivationKind::gelu: return "gelu";
    case ActivationKind::tanh: return "tanh";
    case ActivationKind::sigmoid: return "sigmoid";
  }
  return "?";
}

namespace {
using std::erf;
using std::exp;
using std::tanh;

// Element-wise functors: value f(x) and derivative f'(x) given x and y = f(x).
struct Relu {
  template <class T>
  KOKKOS_INLINE_FUNCTION static T f(T x) { return x > T(0) ? x : T(0); }
  template <class T>
  KOKKOS_INLINE_FUNCTION static T df(T x, T) { return x > T(0) ? T(1) : T(0); }
  template <class T>
  KOKKOS_INLINE_FUNCTION static T d2f(T, T) { return T(0); }  // almost everywhere
};
struct Gelu {  // x * Phi(x), exact
  template <class T>
  KOKKOS_INLINE_FUNCTION static T f(T x) { return T(0.5) * x * (T(1) + erf(x * T(0.70710678118654752440))); }
  template <class T>
  KOKKOS_INLINE_FUNCTION static T df(T x, T) {
    const T cdf = T(0.5) * (T(1) + erf(x * T(0.70710678118654752440)));
    const T pdf = T(0.39894228040143267794) * exp(T(-0.5) * x * x);
    return cdf + x * pdf;
  }
  template <class T>
  KOKKOS_INLINE_FUNCTION static T d2f(T x, T) {  // (Φ + xφ)' = φ + φ + xφ' = φ (2 − x²)
    const T pdf = T(0.39894228040143267794) * exp(T(-0.5) * x * x);
    return pdf * (T(2) - x * x);
  }
};
struct Tanh {
  template <class T>
  KOKKOS_INLINE_FUNCTION static T f(T x) { return tanh(x); }
  template <class T>
  KOKKOS_INLINE_FUNCTION static T df(T, T y) { return T(1) - y * y; }
  template <class T>
  KOKKOS_INLINE_FUNCTION static T d2f(T, T y) { return T(-2) * y * (T(1) - y * y); }
};
struct Sigmoid {
  template <class T>
  KOKKOS_INLINE_FUNCTION static T f(T x) {
    // Stable for large |x|.
    if (x >= T(0)) return T(1) / (T(1) + exp(-x));
    const T e = exp(x);
    return e / (T(1) + e);
  }
  template <class T>
  KOKKOS_INLINE_FUNCTION static T df(T, T y) { return y * (T(1) - y); }
  template <class T>
  KOKKOS_INLINE_FUNCTION static T d2f(T, T y) { return y * (T(1) - y) * (T(1) - T(2) * y); }
};

template <class F, class T>
void forward_kernel(MatU<const T> x, MatU<T> y) {
  const std::size_t n = x.extent(0) * x.extent(1);
  const T* xp = x.data();
  T* yp = y.data();
  Kokkos::parallel_for(
      "sama::Activation::forward", Range(0, n), KOKKOS_LAMBDA(const std::size_t i) { yp[i] = F::f(xp[i]); });
}
template <class F, class T>
void backward_kernel(MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx) {
  const std::size_t n = x.extent(0) * x.extent(1);
  const T* xp = x.data();
  const T* yp = y.data();
  const T* dyp = dy.data();
  T* dxp = dx.data();
  Kokkos::parallel_for(
      "sama::Activation::backward", Range(0, n),
      KOKKOS_LAMBDA(const std::size_t i) { dxp[i] = dyp[i] * F::df(xp[i], yp[i]); });
}
/// ẏ = f'(x) ẋ.
template <class F, class T>
void forward_tangent_kernel(MatU<const T> x, MatU<const T> y, MatU<const T> x_dot, MatU<T> y_dot) {
  const std::size_t n = x.extent(0) * x.extent(1);
  const T* xp = x.data();
  const T* yp = y.data();
  const T* xdp = x_dot.data();
  T* ydp = y_dot.data();
  Kokkos::parallel_for(
      "sama::Activation::forward_tangent", Range(0, n),
      KOKKOS_LAMBDA(const std::size_t i) { ydp[i] = F::df(xp[i], yp[i]) * xdp[i]; });
}
/// R{dx} = ḋy f'(x) + dy f''(x) ẋ (the second term only with an input tangent).
template <class F, class T>
void backward_tangent_kernel(MatU<const T> x, MatU<const T> y, MatU<const T> x_dot, MatU<const T> dy,
                             MatU<const T> dy_dot, MatU<T> dx_dot) {
  const std::size_t n = x.extent(0) * x.extent(1);
  const T* xp = x.data();
  const T* yp = y.data();
  const T* xdp = x_dot.data();
  const T* dyp = dy.data();
  const T* ddyp = dy_dot.data();
  T* dxdp = dx_dot.data();
  if (xdp == nullptr) {
    Kokkos::parallel_for(
        "sama::Activation::backward_tangent", Range(0, n),
        KOKKOS_LAMBDA(const std::size_t i) { dxdp[i] = ddyp[i] * F::df(xp[i], yp[i]); });
    return;
  }
  Kokkos::parallel_for(
      "sama::Activation::backward_tangent", Range(0, n), KOKKOS_LAMBDA(const std::size_t i) {
        dxdp[i] = ddyp[i] * F::df(xp[i], yp[i]) + dyp[i] * F::d2f(xp[i], yp[i]) * xdp[i];
      });
}
}  // namespace

template <class T>
void Activation<T>::forward(VecU<const T>, MatU<const T> x, MatU<T> y) const {
  switch (kind_) {
    case ActivationKind::relu: return forward_kernel<Relu, T>(x, y);
    case ActivationKind::gelu: return forward_kernel<Gelu, T>(x, y);
    case ActivationKind::tanh: return forward_kernel<Tanh, T>(x, y);
    case ActivationKind::sigmoid: return forward_kernel<Sigmoid, T>(x, y);
  }
}

template <class T>
void Activation<T>::backward(VecU<const T>, MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx,
                             VecU<T>) const {
  if (dx.data() == nullptr) return;
  switch (kind_) {
    case ActivationKind::relu: return backward_kernel<Relu, T>(x, y, dy, dx);
    case ActivationKind::gelu: return backward_kernel<Gelu, T>(x, y, dy, dx);
    case ActivationKind::tanh: return backward_kernel<Tanh, T>(x, y, dy, dx);
    case ActivationKind::sigmoid: return backward_kernel<Sigmoid, T>(x, y, dy, dx);
  }
}

template <class T>
void Activation<T>::forward_tangent(VecU<const T>, VecU<const T>, MatU<const T> x, MatU<const T> x_dot,
                                    MatU<const T> y, MatU<T> y_dot) const {
  if (x_dot.data() == nullptr) {  // no input tangent and no parameters: ẏ = 0
    Kokkos::deep_copy(y_dot, T(0));
    return;
  }
  switch (kind_) {
    case ActivationKind::relu: return forward_tangent_kernel<Relu, T>(x, y, x_dot, y_dot);
    case ActivationKind::gelu: return forward_tangent_kernel<Gelu, T>(x, y, x_dot, y_dot);
    case ActivationKind::tanh: return forward_tangent_kernel<Tanh, T>(x, y, x_dot, y_dot);
    case ActivationKind::sigmoid: return forward_tangent_kernel<Sigmoid, T>(x, y, x_dot, y_dot);
  }
}

template <class T>
void Activation<T>::backward_tangent(VecU<const T>, VecU<const T>, MatU<const T> x, MatU<const T> x_dot,
                                     MatU<const T> y, MatU<const T>, MatU<const T> dy, MatU<const T> dy_dot,
                                     MatU<T> dx_dot, VecU<T>) const {
  if (dx_dot.data() == nullptr) return;
  switch (kind_) {
    case ActivationKind::relu: return backward_tangent_kernel<Relu, T>(x, y, x_dot, dy, dy_dot, dx_dot);
    case ActivationKind::gelu: return backward_tangent_kernel<Gelu, T>(x, y, x_dot, dy, dy_dot, dx_dot);
    case ActivationKind::tanh: return backward_tangent_kernel<Tanh, T>(x, y, x_dot, dy, dy_dot, dx_dot);
    case ActivationKind::sigmoid: return backward_tangent_kernel<Sigmoid, T>(x, y, x_dot, dy, dy_dot, dx_dot);
  }
}

template class Activation<float>;
template class Activation<double>;

}  // namespace sama::nn

#include "sama/nn/layers/flatten.hpp"

namespace sama::nn {

namespace {
/// dst = src, or 0 where src is empty (a zero tangent).
template <class T>
void copy_or_zero(MatU<const T> src, MatU<T> dst) {
  if (dst.data() == nullptr) return;
  if (src.data() == nullptr) {
    Kokkos::deep_copy(dst, T(0));
  } else {
    Kokkos::deep_copy(dst, src);
  }
}
}  // namespace

template <class T>
void Flatten<T>::forward(const ModuleCtx<T>&, MatU<const T> x, MatU<T> y) const {
  copy_or_zero(x, y);
}

template <class T>
void Flatten<T>::backward(const ModuleCtx<T>&, MatU<const T>, MatU<const T>, MatU<const T> dy, MatU<T> dx,
                          VecU<T>) const {
  copy_or_zero(dy, dx);
}

template <class T>
void Flatten<T>::forward_tangent(const ModuleCtx<T>&, VecU<const T>, MatU<const T>, MatU<const T> x_dot,
                                 MatU<const T>, MatU<T> y_dot) const {
  copy_or_zero(x_dot, y_dot);
}

template <class T>
void Flatten<T>::backward_tangent(const ModuleCtx<T>&, VecU<const T>, MatU<const T>, MatU<const T>, MatU<const T>,
                                  MatU<const T>, MatU<const T>, MatU<const T> dy_dot, MatU<T> dx_dot, VecU<T>) const {
  copy_or_zero(dy_dot, dx_dot);
}

template class Flatten<float>;
template class Flatten<double>;

}  // namespace sama::nn

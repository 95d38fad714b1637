#include "sama/nn/layers/dense.hpp"

namespace sama::nn {

template <class T>
void add_linear_sample_sq_norms(MatU<const T> x, MatU<const T> dy, VecU<T> sq) {
  SAMA_REQUIRE(sq.extent(0) >= x.extent(0), "per-sample gradient norms: buffer of {} for a batch of {}",
               sq.extent(0), x.extent(0));
  const std::size_t in = x.extent(1), out = dy.extent(1);
  Kokkos::parallel_for(
      "sama::DenseLayer::sample_grad_norms", Range(0, x.extent(0)), KOKKOS_LAMBDA(const std::size_t i) {
        T xx = 1, gg = 0;
        for (std::size_t j = 0; j < in; ++j) xx += x(i, j) * x(i, j);
        for (std::size_t j = 0; j < out; ++j) gg += dy(i, j) * dy(i, j);
        sq(i) += xx * gg;
      });
}

template <class T>
void DenseLayer<T>::init(VecU<T> p, VecU<T> /*buffers*/, Rng& rng) const {
  linear_.init(p, rng);
}
template <class T>
void DenseLayer<T>::forward(const ModuleCtx<T>& c, MatU<const T> x, MatU<T> y) const {
  linear_.forward(c.p, x, y);
}
template <class T>
void DenseLayer<T>::backward(const ModuleCtx<T>& c, MatU<const T> x, MatU<const T> y, MatU<const T> dy, MatU<T> dx,
                             VecU<T> dp) const {
  if (c.sample_sq.data() != nullptr) add_linear_sample_sq_norms(x, dy, c.sample_sq);
  linear_.backward(c.p, x, y, dy, dx, dp);
}
template <class T>
void DenseLayer<T>::forward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                                    MatU<const T> y, MatU<T> y_dot) const {
  linear_.forward_tangent(c.p, p_dot, x, x_dot, y, y_dot);
}
template <class T>
void DenseLayer<T>::backward_tangent(const ModuleCtx<T>& c, VecU<const T> p_dot, MatU<const T> x, MatU<const T> x_dot,
                                     MatU<const T> y, MatU<const T> y_dot, MatU<const T> dy, MatU<const T> dy_dot,
                                     MatU<T> dx_dot, VecU<T> dp_dot) const {
  linear_.backward_tangent(c.p, p_dot, x, x_dot, y, y_dot, dy, dy_dot, dx_dot, dp_dot);
}

template <class T>
void ActivationLayer<T>::forward(const ModuleCtx<T>& /*c*/, MatU<const T> x, MatU<T> y) const {
  act_.forward(VecU<const T>(), x, y);
}
template <class T>
void ActivationLayer<T>::backward(const ModuleCtx<T>& /*c*/, MatU<const T> x, MatU<const T> y, MatU<const T> dy,
                                  MatU<T> dx, VecU<T> /*dp*/) const {
  if (dx.data() != nullptr) act_.backward(VecU<const T>(), x, y, dy, dx, VecU<T>());
}
template <class T>
void ActivationLayer<T>::forward_tangent(const ModuleCtx<T>& /*c*/, VecU<const T> /*p_dot*/, MatU<const T> x,
                                         MatU<const T> x_dot, MatU<const T> y, MatU<T> y_dot) const {
  act_.forward_tangent(VecU<const T>(), VecU<const T>(), x, x_dot, y, y_dot);
}
template <class T>
void ActivationLayer<T>::backward_tangent(const ModuleCtx<T>& /*c*/, VecU<const T> /*p_dot*/, MatU<const T> x,
                                          MatU<const T> x_dot, MatU<const T> y, MatU<const T> y_dot, MatU<const T> dy,
                                          MatU<const T> dy_dot, MatU<T> dx_dot, VecU<T> /*dp_dot*/) const {
  if (dx_dot.data() != nullptr)
    act_.backward_tangent(VecU<const T>(), VecU<const T>(), x, x_dot, y, y_dot, dy, dy_dot, dx_dot, VecU<T>());
}

template void add_linear_sample_sq_norms<float>(MatU<const float>, MatU<const float>, VecU<float>);
template void add_linear_sample_sq_norms<double>(MatU<const double>, MatU<const double>, VecU<double>);
template class DenseLayer<float>;
template class DenseLayer<double>;
template class ActivationLayer<float>;
template class ActivationLayer<double>;

}  // namespace sama::nn
